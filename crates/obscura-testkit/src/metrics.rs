//! Reads one metric from a server's Prometheus endpoint, for tests that observe what the server
//! holds or counts rather than its process memory.

/// The sum over every label set of the sample `name` (exactly that name, so `x_sum` and
/// `x_count` of a summary are separate), or `None` when the server does not expose it.
pub async fn scrape(mgmt_base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{mgmt_base}/metrics")).await.ok()?.text().await.ok()?;
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let metric = series.split('{').next().unwrap_or(series);
        if metric == name {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    found
}
