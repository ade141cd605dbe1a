//! Three Raft nodes in one process over an in-memory network, each with its own mtrdb directory:
//! writes through the leader, a node stopped and restarted from its directory (catching up by
//! snapshot, as the leader purged the log it missed), then the leader stopped and a new one
//! elected, with no acknowledged write lost. Prints what happened, the figures, and its checks;
//! exits non-zero if a check fails.
//!
//! `cargo run --release -p mtrdb-raft --example cluster [-- --writes N]`

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtrdb_raft::{Request, Response, StateMachineReader, Stores, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use parking_lot::Mutex;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Every phase must finish within this, or the example fails (it runs in CI).
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent clients writing through the leader.
const CLIENTS: usize = 16;

/// The in-memory network: node id to its Raft handle; a stopped node is absent (unreachable).
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft<TypeConfig>>>>,
}

impl Router {
    fn get(&self, id: u64) -> Option<Raft<TypeConfig>> {
        self.nodes.lock().get(&id).cloned()
    }
}

struct Connection {
    router: Router,
    target: u64,
}

fn unreachable<E: std::error::Error>(target: u64) -> RPCError<u64, BasicNode, E> {
    let error = io::Error::new(io::ErrorKind::ConnectionRefused, format!("node {target} is down"));
    RPCError::Unreachable(Unreachable::new(&error))
}

impl Connection {
    /// The target's Raft handle, or unreachable if it is stopped.
    #[allow(clippy::result_large_err)] // openraft's error type, as its RaftNetwork methods return it
    fn target<E: std::error::Error>(&self) -> Result<Raft<TypeConfig>, RPCError<u64, BasicNode, E>> {
        self.router.get(self.target).ok_or_else(|| unreachable(self.target))
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection { router: self.clone(), target }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.target()?;
        raft.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        let raft = self.target()?;
        raft.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.target()?;
        raft.vote(rpc).await.map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

/// A running node.
struct Node {
    raft: Raft<TypeConfig>,
    reader: StateMachineReader,
}

fn config() -> Result<Arc<Config>, Failure> {
    let config = Config {
        cluster_name: "mtrdb-raft-example".into(),
        heartbeat_interval: 50,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // Snapshots every 1,000 entries, and only 100 entries kept behind one: a node that
        // misses more than that catches up by snapshot.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

async fn start(id: u64, dir: &Path, router: &Router) -> Result<Node, Failure> {
    let stores = Stores::open(dir)?;
    let reader = stores.state_machine.reader();
    let raft = Raft::new(id, config()?, router.clone(), stores.log, stores.state_machine).await?;
    router.nodes.lock().insert(id, raft.clone());
    Ok(Node { raft, reader })
}

/// Stops a node: off the network, its Raft tasks shut down, its database closed.
async fn stop(id: u64, node: Node, router: &Router) -> Result<(), Failure> {
    router.nodes.lock().remove(&id);
    node.raft.shutdown().await.map_err(|e| format!("shutting down node {id}: {e}"))?;
    Ok(())
}

async fn leader_of(nodes: &BTreeMap<u64, Node>) -> Result<u64, Failure> {
    let Some(node) = nodes.values().next() else { return Err("no node is running".into()) };
    let metrics = node
        .raft
        .wait(Some(PHASE_TIMEOUT))
        .metrics(|m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)), "a running leader")
        .await?;
    metrics.current_leader.ok_or_else(|| "no leader".into())
}

/// Writes `request` through the leader, following a leader change (a `Set` written twice
/// writes the same thing).
async fn write_one(router: &Router, leader: &mut u64, request: Request) -> Result<(), String> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let raft = router.get(*leader).ok_or_else(|| format!("node {leader} is not running"))?;
        match raft.client_write(request.clone()).await {
            Ok(response) if response.data == Response::Applied => return Ok(()),
            Ok(response) => return Err(format!("{:?}", response.data)),
            Err(error) if Instant::now() < deadline => match error.forward_to_leader().and_then(|f| f.leader_id) {
                Some(new_leader) => *leader = new_leader,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// Writes keys `range` through the leader from [`CLIENTS`] concurrent clients; records what
/// was acknowledged in `model`. Returns the writes per second.
async fn write(
    router: &Router,
    leader: u64,
    range: std::ops::Range<u64>,
    tag: &str,
    model: &mut Map,
) -> Result<f64, Failure> {
    let started = Instant::now();
    let count = range.end - range.start;
    let mut clients = Vec::new();
    for client in 0..CLIENTS as u64 {
        let router = router.clone();
        let keys: Vec<u64> = range.clone().filter(|k| k % CLIENTS as u64 == client).collect();
        let tag = tag.to_string();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut leader = leader;
            for k in keys {
                let (key, value) = (format!("key{k:08}").into_bytes(), format!("{tag}-{k}").into_bytes());
                let request = Request::Set { key: key.clone(), value: value.clone() };
                write_one(&router, &mut leader, request).await.map_err(|e| format!("write {k}: {e}"))?;
                acked.push((key, value));
            }
            Ok::<_, String>(acked)
        }));
    }
    for client in clients {
        for (key, value) in tokio::time::timeout(PHASE_TIMEOUT, client).await??? {
            model.insert(key, value);
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn contents(reader: &StateMachineReader) -> Result<Map, Failure> {
    let mut map = Map::new();
    reader.for_each(|k, v| drop(map.insert(k.to_vec(), v.to_vec())))?;
    Ok(map)
}

struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        println!("  check {}: {what}", if ok { "passed" } else { "FAILED" });
        self.failed += usize::from(!ok);
    }
}

async fn wait_applied(node: &Node, index: u64, what: &str) -> Result<(), Failure> {
    node.raft.wait(Some(PHASE_TIMEOUT)).applied_index_at_least(Some(index), what).await?;
    Ok(())
}

async fn run(writes: u64, base: &Path) -> Result<usize, Failure> {
    let router = Router::default();
    let dirs: BTreeMap<u64, PathBuf> = (1..=3).map(|id| (id, base.join(format!("node-{id}")))).collect();
    let mut nodes = BTreeMap::new();
    for (&id, dir) in &dirs {
        nodes.insert(id, start(id, dir, &router).await?);
    }
    let members: BTreeMap<u64, BasicNode> =
        (1..=3).map(|id| (id, BasicNode { addr: format!("memory:{id}") })).collect();
    nodes[&1].raft.initialize(members).await?;
    let leader = leader_of(&nodes).await?;
    println!("3 nodes started in {}; node {leader} leads", base.display());
    let mut checks = Checks { failed: 0 };
    let mut model = Map::new();

    // Phase 1: writes through the leader.
    let rate = write(&router, leader, 0..writes, "a", &mut model).await?;
    println!("{writes} writes through the leader from {CLIENTS} clients: {rate:.0} writes/s (each committed by a majority, durable on it, and applied)");

    // Phase 2: a follower stops; more writes, past several snapshots and purges.
    let stopped = *dirs.keys().find(|&&id| id != leader).ok_or("no follower")?;
    let node = nodes.remove(&stopped).ok_or("no such node")?;
    stop(stopped, node, &router).await?;
    println!("node {stopped} stopped");
    let rate = write(&router, leader, writes..3 * writes, "b", &mut model).await?;
    println!("{} more writes with node {stopped} down: {rate:.0} writes/s", 2 * writes);
    let leader = leader_of(&nodes).await?;
    let leader_metrics = nodes[&leader].raft.metrics().borrow().clone();
    let target = leader_metrics.last_applied.map_or(0, |id| id.index);
    println!(
        "  the leader's log: snapshot at {:?}, purged up to {:?}, applied {target}",
        leader_metrics.snapshot.map(|id| id.index),
        leader_metrics.purged.map(|id| id.index)
    );

    // Phase 3: the stopped node restarts from its directory and catches up.
    let started = Instant::now();
    let node = start(stopped, &dirs[&stopped], &router).await?;
    let reopened_at = node.reader.applied().map_or(0, |id| id.index);
    wait_applied(&node, target, "catch-up").await?;
    let catch_up = started.elapsed();
    let metrics = node.raft.metrics().borrow().clone();
    let by_snapshot = metrics.snapshot.is_some_and(|id| id.index > reopened_at);
    println!(
        "node {stopped} restarted at applied index {reopened_at} and caught up to {target} in {:.0} ms ({})",
        catch_up.as_secs_f64() * 1000.0,
        if by_snapshot { "by snapshot, then log" } else { "by log" }
    );
    nodes.insert(stopped, node);
    checks.check(
        by_snapshot,
        "the restarted node caught up by installing the leader's snapshot (the log it missed was purged)",
    );
    for node in nodes.values() {
        wait_applied(node, target, "every node applied").await?;
    }
    let mut all_equal = true;
    for (id, node) in &nodes {
        let map = contents(&node.reader)?;
        all_equal &= map == model;
        println!("  node {id}: {} keys, applied {:?}", map.len(), node.reader.applied().map(|id| id.index));
    }
    checks.check(all_equal, "all three state machines equal every acknowledged write");

    // Phase 4: the leader stops; a new one is elected and no acknowledged write is lost.
    // (The restarted node may have campaigned meanwhile: the leader is looked up again.)
    let old_leader = leader_of(&nodes).await?;
    let node = nodes.remove(&old_leader).ok_or("no leader node")?;
    let stopped_at = Instant::now();
    stop(old_leader, node, &router).await?;
    let leader = leader_of(&nodes).await?;
    println!(
        "leader {old_leader} stopped; node {leader} elected in {:.0} ms",
        stopped_at.elapsed().as_secs_f64() * 1000.0
    );
    checks.check(leader != old_leader, "a new leader was elected");
    nodes[&leader].raft.ensure_linearizable().await?;
    let map = contents(&nodes[&leader].reader)?;
    checks.check(map == model, "the new leader holds every acknowledged write");
    let rate = write(&router, leader, 3 * writes..4 * writes, "c", &mut model).await?;
    println!("{writes} writes through the new leader with one node down: {rate:.0} writes/s");

    // Phase 5: the old leader restarts and converges.
    let node = start(old_leader, &dirs[&old_leader], &router).await?;
    nodes.insert(old_leader, node);
    let target = nodes[&leader].raft.metrics().borrow().last_applied.map_or(0, |id| id.index);
    let mut all_equal = true;
    for node in nodes.values() {
        wait_applied(node, target, "convergence").await?;
    }
    for node in nodes.values() {
        all_equal &= contents(&node.reader)? == model;
    }
    checks.check(all_equal, "after the old leader restarts, all three state machines equal every acknowledged write");
    let states: Vec<ServerState> = nodes.values().map(|n| n.raft.metrics().borrow().state).collect();
    checks.check(states.iter().filter(|s| **s == ServerState::Leader).count() == 1, "exactly one leader");

    for (id, node) in std::mem::take(&mut nodes) {
        stop(id, node, &router).await?;
    }
    Ok(checks.failed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let mut writes = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--writes" => writes = args.next().and_then(|n| n.parse().ok()).ok_or("--writes takes a number")?,
            other => return Err(format!("unknown argument {other}; usage: cluster [--writes N]").into()),
        }
    }
    let base = tempfile::tempdir()?;
    let started = Instant::now();
    let failed = run(writes, base.path()).await?;
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if failed > 0 {
        return Err(format!("{failed} checks failed").into());
    }
    println!("all checks passed");
    Ok(())
}
