//! Conformance of every adapter to its port.

mod sqlite_store;
