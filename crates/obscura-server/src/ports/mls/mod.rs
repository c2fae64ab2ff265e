//! The persistent state of the MLS Delivery Service. As in `store`, every method is one atomic
//! rule decided inside the adapter's transaction.

mod blobs;
mod convos;
mod devices;
mod events;
mod key_packages;

pub use blobs::*;
pub use convos::*;
pub use devices::*;
pub use events::*;
pub use key_packages::*;
