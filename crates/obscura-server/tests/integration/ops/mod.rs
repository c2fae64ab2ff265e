mod cli;
mod docs;
mod mgmt;
mod outages;
mod rate_limits;
mod request_ids;
mod shutdown;
mod telemetry;
