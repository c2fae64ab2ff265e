//! Shared rate-limit state: Redis (scale-out mode). The embedded mode keeps its GCRA state in
//! process (`transport::rate_limit`).

pub mod redis;
