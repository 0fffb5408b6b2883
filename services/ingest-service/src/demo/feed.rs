//! The demo feed's delivery: each school's lines into its input, as a real sender would —
//! a syslog TCP connection (reconnected when it drops), UDP datagrams, a `SubmitBreaches` call
//! with the token the school's system exchanged its credential for, or a batch published to
//! the NATS ingest buffer.

use std::net::SocketAddr;
use std::time::Duration;

use haven_bus::{IngestBuffer, Nats};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use haven_proto::v1::identity_client::IdentityClient;
use haven_proto::v1::ingest_client::IngestClient;
use haven_runtime::Shutdown;
use jiff::Timestamp;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tonic::transport::{Channel, Endpoint};

use super::{Generator, Vendor, rate_per_thousand_pupils};

/// Lines kept for a school while its input cannot take them; past this the oldest go.
const MAX_PENDING_LINES: usize = 10_000;
/// Lines per `SubmitBreaches` message and per buffer batch.
const LINES_PER_MESSAGE: usize = 1_000;

/// A school system's credential and where to use it.
#[derive(Clone, Debug)]
pub struct GrpcSystem {
    /// Haven's gRPC address (`http://127.0.0.1:50051`): identity to exchange the credential,
    /// ingest to submit.
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The input a demo school's lines go into.
#[derive(Clone, Debug)]
pub enum DemoInput {
    SyslogTcp(SocketAddr),
    SyslogUdp(SocketAddr),
    Grpc(GrpcSystem),
    Buffer(Nats),
}

/// What the feed sends for one school.
#[derive(Clone, Debug)]
pub struct DemoSchool {
    pub school_id: String,
    pub pupils: u32,
    pub vendor: Vendor,
    /// The school's second octet in the 10.0.0.0/8 plan.
    pub school_octet: u8,
    pub input: DemoInput,
}

/// Runs the feed until shutdown: every school's opening lines at once, then lines at the
/// shaped rate, `speed` times real time.
pub async fn run(schools: Vec<DemoSchool>, speed: f64, shutdown: Shutdown) {
    let mut tasks = Vec::new();
    for (index, school) in schools.into_iter().enumerate() {
        tasks.push(tokio::spawn(feed_school(index as u64, school, speed, shutdown.clone())));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn feed_school(index: u64, school: DemoSchool, speed: f64, shutdown: Shutdown) {
    let mut generator = Generator::new(school.vendor, school.school_octet, school.pupils, 0x5eed_0000 + index);
    let Ok(school_id) = SchoolId::parse(&school.school_id) else { return };
    let mut pending = generator.opening(&school.school_id, Timestamp::now());
    let mut delivery = Delivery::new(school.input, school_id, school.vendor);
    let tick = Duration::from_millis(250);
    let mut carry = 0.0f64;
    loop {
        let now = Timestamp::now();
        carry += rate_per_thousand_pupils(now) * f64::from(school.pupils) / 1000.0 * tick.as_secs_f64() * speed;
        while carry >= 1.0 {
            carry -= 1.0;
            pending.push(generator.next_line(now));
        }
        if !pending.is_empty() {
            match delivery.send(&pending).await {
                Ok(()) => pending.clear(),
                Err(error) => {
                    tracing::debug!(school = %school.school_id, %error, "demo feed: input not reached; retrying");
                    let over = pending.len().saturating_sub(MAX_PENDING_LINES);
                    pending.drain(..over);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = shutdown.triggered() => return,
        }
    }
}

/// One school's input, connected on first use and again after a failure.
enum Delivery {
    Tcp { address: SocketAddr, stream: Option<TcpStream> },
    Udp { address: SocketAddr, socket: Option<UdpSocket> },
    Grpc { system: GrpcSystem, school: SchoolId, vendor: Vendor, clients: Option<Clients>, token: Option<String> },
    Buffer { nats: Nats, school: SchoolId, vendor: Vendor, buffer: Option<IngestBuffer>, batches: u64, run: i128 },
}

struct Clients {
    identity: IdentityClient<Channel>,
    ingest: IngestClient<Channel>,
}

impl Delivery {
    fn new(input: DemoInput, school: SchoolId, vendor: Vendor) -> Self {
        match input {
            DemoInput::SyslogTcp(address) => Delivery::Tcp { address, stream: None },
            DemoInput::SyslogUdp(address) => Delivery::Udp { address, socket: None },
            DemoInput::Grpc(system) => Delivery::Grpc { system, school, vendor, clients: None, token: None },
            DemoInput::Buffer(nats) => {
                // Batch ids are unique per run: the buffer drops a publish whose id it has seen.
                let run = Timestamp::now().as_nanosecond();
                Delivery::Buffer { nats, school, vendor, buffer: None, batches: 0, run }
            }
        }
    }

    async fn send(&mut self, lines: &[String]) -> Result<(), String> {
        match self {
            Delivery::Tcp { address, stream } => {
                let mut bytes = Vec::new();
                for line in lines {
                    bytes.extend_from_slice(line.as_bytes());
                    bytes.push(b'\n');
                }
                let connected = match stream {
                    Some(connected) => connected,
                    None => stream.insert(TcpStream::connect(*address).await.map_err(|e| e.to_string())?),
                };
                if let Err(error) = connected.write_all(&bytes).await {
                    *stream = None;
                    return Err(error.to_string());
                }
                Ok(())
            }
            Delivery::Udp { address, socket } => {
                let socket = match socket {
                    Some(socket) => socket,
                    None => socket.insert(UdpSocket::bind(("127.0.0.1", 0)).await.map_err(|e| e.to_string())?),
                };
                for line in lines {
                    socket.send_to(line.as_bytes(), *address).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Delivery::Grpc { system, school, vendor, clients, token } => {
                submit(system, school, *vendor, clients, token, lines).await
            }
            Delivery::Buffer { nats, school, vendor, buffer, batches, run } => {
                let buffer = match buffer {
                    Some(buffer) => buffer,
                    None => buffer.insert(IngestBuffer::new(nats.clone()).await.map_err(|e| e.to_string())?),
                };
                for chunk in lines.chunks(LINES_PER_MESSAGE) {
                    *batches += 1;
                    let batch_id = format!("demo-{school}-{run}-{batches}");
                    buffer
                        .publish(school, vendor.format().as_str(), &batch_id, chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }
}

/// One `SubmitBreaches` call for `lines`, exchanging the system's credential for a token
/// first (and again when the token is refused, e.g. expired).
async fn submit(
    system: &GrpcSystem,
    school: &SchoolId,
    vendor: Vendor,
    clients: &mut Option<Clients>,
    token: &mut Option<String>,
    lines: &[String],
) -> Result<(), String> {
    let clients = match clients {
        Some(clients) => clients,
        None => {
            let channel = Endpoint::from_shared(system.endpoint.clone())
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .connect_lazy();
            clients
                .insert(Clients { identity: IdentityClient::new(channel.clone()), ingest: IngestClient::new(channel) })
        }
    };
    let bearer = match token {
        Some(bearer) => bearer,
        None => {
            let request = pb::ExchangeClientCredentialsRequest {
                client_id: system.client_id.clone(),
                client_secret: system.client_secret.clone(),
            };
            let response = clients.identity.exchange_client_credentials(request).await.map_err(|e| e.to_string())?;
            let access = response.into_inner().tokens.map(|tokens| tokens.access_token).unwrap_or_default();
            token.insert(format!("Bearer {access}"))
        }
    };
    let format = pb::SourceFormat::from_str_name(&format!("SOURCE_FORMAT_{}", vendor.format().as_str().to_uppercase()))
        .unwrap_or(pb::SourceFormat::Unspecified);
    let messages: Vec<_> = lines
        .chunks(LINES_PER_MESSAGE)
        .map(|chunk| pb::SubmitBreachesRequest {
            school_id: school.to_string(),
            source_id: super::source_id(vendor),
            source_format: format as i32,
            lines: chunk
                .iter()
                .map(|line| pb::RawLine { line: line.clone().into_bytes(), ..Default::default() })
                .collect(),
        })
        .collect();
    let mut request = tonic::Request::new(futures_util::stream::iter(messages));
    let value = bearer.parse().map_err(|_| "the token is not a header value".to_owned())?;
    request.metadata_mut().insert("authorization", value);
    match clients.ingest.submit_breaches(request).await {
        Ok(_) => Ok(()),
        Err(status) => {
            if status.code() == tonic::Code::Unauthenticated {
                *token = None;
            }
            Err(status.to_string())
        }
    }
}
