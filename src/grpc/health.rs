//! `grpc.health.v1.Health` following readiness: NOT_SERVING while the model loads and from
//! SIGTERM on (lame duck and drain), SERVING in between. The overall status (service `""`),
//! each `tei.v1` service's and KServe's follow the same flag.

use std::{sync::Arc, time::Duration};

use tonic_health::{server::HealthReporter, ServingStatus};

use super::{kserve, tei::SERVICE_NAMES, Readiness};

/// How often readiness is read; the health watchers are told only of changes.
const POLL: Duration = Duration::from_millis(100);

/// Keeps `reporter` in step with `readiness` until the process exits.
pub async fn follow(reporter: HealthReporter, readiness: Arc<dyn Readiness>) {
    let mut last = None;
    loop {
        let status = match readiness.ready() {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        if last != Some(status) {
            let services = SERVICE_NAMES.iter().copied().chain([kserve::SERVICE]);
            for service in std::iter::once("").chain(services) {
                reporter.set_service_status(service, status).await;
            }
            last = Some(status);
        }
        tokio::time::sleep(POLL).await;
    }
}
