mod cli;
mod docs;
mod mgmt;
mod rate_limits;
mod request_ids;
mod shutdown;
mod telemetry;
