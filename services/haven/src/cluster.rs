//! `haven log cluster …`: manage the replicated log's membership through a node's
//! `haven.v1.Cluster` service (init, add-learner, promote, remove, status).

use std::process::ExitCode;

use haven_proto::v1 as pb;
use haven_proto::v1::cluster_client::ClusterClient;
use haven_runtime::internal::request as internal;
use tonic::transport::Endpoint;

/// What to ask the node.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a cluster on this node with the given voters (none: this node alone). Run once.
    Init {
        /// A voter as ID=HOST:PORT; repeat for each. Must include the node asked.
        #[arg(long = "member", value_name = "ID=ADDR", value_parser = parse_member)]
        members: Vec<(u64, String)>,
    },
    /// Add a node as a learner (it receives the log, does not vote); returns once caught up.
    AddLearner {
        #[arg(long)]
        node_id: u64,
        /// The new node's gRPC address, HOST:PORT.
        #[arg(long, value_name = "ADDR")]
        node_addr: String,
    },
    /// Make a learner a voter.
    Promote {
        #[arg(long)]
        node_id: u64,
    },
    /// Take a node out of the cluster (voter or learner).
    Remove {
        #[arg(long)]
        node_id: u64,
    },
    /// Leader, term, log indexes and members as this node sees them.
    Status,
}

fn parse_member(raw: &str) -> Result<(u64, String), String> {
    let (id, addr) = raw.split_once('=').ok_or_else(|| format!("{raw:?} is not ID=HOST:PORT"))?;
    let id: u64 = id.parse().map_err(|_| format!("{id:?} is not a node id"))?;
    if id == 0 || addr.is_empty() {
        return Err(format!("{raw:?}: node ids start at 1 and need an address"));
    }
    Ok((id, addr.to_owned()))
}

pub async fn run(grpc_addr: &str, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let channel = Endpoint::from_shared(format!("http://{grpc_addr}"))?.connect_lazy();
    let mut client = ClusterClient::new(channel);
    let node = |node_id: u64, addr: String| pb::ClusterNodeRequest { node_id, addr };
    let status = match command {
        ClusterCommand::Init { members } => {
            let members = members
                .into_iter()
                .map(|(node_id, addr)| pb::ClusterMember { node_id, addr, voter: true, matched_index: 0 })
                .collect();
            client.init(internal(pb::ClusterInitRequest { members })).await
        }
        ClusterCommand::AddLearner { node_id, node_addr } => {
            client.add_learner(internal(node(node_id, node_addr))).await
        }
        ClusterCommand::Promote { node_id } => client.promote(internal(node(node_id, String::new()))).await,
        ClusterCommand::Remove { node_id } => client.remove(internal(node(node_id, String::new()))).await,
        ClusterCommand::Status => client.status(internal(pb::ClusterStatusRequest {})).await,
    }
    .map_err(|status| anyhow::anyhow!("{grpc_addr}: {}", status.message()))?
    .into_inner();
    print_status(&status);
    Ok(ExitCode::SUCCESS)
}

fn print_status(status: &pb::ClusterStatus) {
    let leader = if status.leader_id == 0 { "none known".to_owned() } else { status.leader_id.to_string() };
    println!("node {} ({}) · leader {leader} · term {}", status.node_id, status.state, status.term);
    println!(
        "raft log: last index {} · applied {} · event log next position {}",
        status.last_log_index, status.applied_index, status.next_position
    );
    println!("{:>6}  {:<24} {:<8} matched", "node", "addr", "role");
    for member in &status.members {
        let role = if member.voter { "voter" } else { "learner" };
        println!("{:>6}  {:<24} {:<8} {}", member.node_id, member.addr, role, member.matched_index);
    }
}
