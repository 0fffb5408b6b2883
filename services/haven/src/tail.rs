//! `haven log tail`: print events of `$all` from a running node, one line each — position,
//! stream, type, school, recorded time. Payloads are not printed (they may hold personal data).

use std::process::ExitCode;
use std::time::Duration;

use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_kernel::Position;
use haven_proto::v1::EventFilter;

pub async fn run(grpc_addr: std::net::SocketAddr, from: u64, limit: u32) -> anyhow::Result<ExitCode> {
    let log = GrpcEventLog::connect_lazy(&format!("http://{grpc_addr}"), Duration::from_secs(10))?;
    let mut position = Position(from);
    let mut printed = 0u32;
    println!("{:>10}  {:<32} {:<40} {:<20} recorded_at", "position", "stream", "type", "school");
    while printed < limit {
        let page = log
            .read_all(position, (limit - printed).min(1_000), &EventFilter::default())
            .await
            .map_err(|e| anyhow::anyhow!("reading the log at {grpc_addr}: {e}"))?;
        for event in &page.events {
            let recorded = event.recorded_at.map(|t| t.seconds).unwrap_or_default();
            println!(
                "{:>10}  {:<32} {:<40} {:<20} {recorded}",
                event.position, event.stream_id, event.event_type, event.school_id
            );
            printed += 1;
        }
        position = page.next_position;
        if page.end_of_log {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
