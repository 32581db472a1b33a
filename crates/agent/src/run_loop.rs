//! The agent's schedule as a state machine: [`AgentLoop::tick`] does whatever is due at the time
//! it is given and says when it next needs to run. The loop owns no clock and never sleeps, so
//! tests drive it with made-up times, a scripted source and a failing checkpointer, without
//! waiting.
//!
//! Order of a cycle, chosen so a crash never makes Prometheus see a counter go backwards:
//! dump (with the DESTROY events that arrive meanwhile) → write the checkpoint → publish the new
//! values → tell the observers. Between cycles the events the reader queued are drained every
//! drain period.
//!
//! What it does not do: read the kernel (the source does, and its event reader runs on a thread
//! of its own), serve HTTP, or keep history (an observer does that).

use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use netcost_conntrack::EventStatus;
use netcost_core::flow::FlowSource;
use netcost_core::pipeline::{Pipeline, Snapshot};
use netcost_core::topology::Topology;

use crate::exposition::{self, CycleTiming, Exposition, PodMeta};
use crate::state_file::{self, StateFileError};
use crate::{Shared, traffic_log};

/// Persists the pipeline's state after a cycle, before its values are published, and the
/// counters between cycles.
pub trait Checkpointer {
    /// Writes the checkpoint; on an error the loop keeps serving the last checkpointed values.
    ///
    /// # Errors
    ///
    /// Why the checkpoint could not be written.
    fn save(&mut self, pipeline: &Pipeline) -> Result<(), StateFileError>;

    /// Writes the counters after DESTROY events counted bytes between two cycles (an interim
    /// checkpoint), so that a crash does not lose the flows that ended since the checkpoint.
    /// The default saves nothing.
    ///
    /// # Errors
    ///
    /// Why it could not be written.
    fn save_interim(&mut self, _pipeline: &Pipeline) -> Result<(), StateFileError> {
        Ok(())
    }
}

/// The `--state-file` checkpointer: it streams the checkpoint into a temporary file that is
/// renamed over the old one, and keeps an interim checkpoint beside it; without a path it
/// saves nothing.
#[derive(Debug, Clone, Default)]
pub struct StateFileCheckpointer {
    /// The state file, if any.
    pub path: Option<PathBuf>,
    /// The checksum of the checkpoint the next interim continues: the last one written, or the
    /// one the agent restored.
    pub checkpoint: Option<u64>,
}

impl Checkpointer for StateFileCheckpointer {
    fn save(&mut self, pipeline: &Pipeline) -> Result<(), StateFileError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut checksum = 0;
        // Until the new checkpoint is in place, the old interim still continues the old one.
        state_file::save_with(path, &mut |file| {
            let mut out = BufWriter::with_capacity(256 << 10, file);
            checksum = pipeline.write_checkpoint(&mut out)?;
            Ok(())
        })?;
        self.checkpoint = Some(checksum);
        Ok(())
    }

    fn save_interim(&mut self, pipeline: &Pipeline) -> Result<(), StateFileError> {
        let (Some(path), Some(checkpoint)) = (&self.path, self.checkpoint) else {
            return Ok(());
        };
        state_file::save_interim(path, &mut |file| {
            let mut out = BufWriter::with_capacity(64 << 10, file);
            pipeline.write_interim(&mut out, checkpoint)
        })
    }
}

/// One published cycle, as an observer sees it.
#[derive(Debug)]
pub struct PublishedCycle<'a> {
    /// The values just published.
    pub snapshot: &'a Snapshot,
    /// The topology they were computed with.
    pub topology: &'a Topology,
    /// The runner's figures.
    pub timing: &'a CycleTiming,
    /// When the cycle ended, in Unix milliseconds.
    pub unix_ms: u64,
}

/// Something that wants every published cycle, such as the single-host history recorder.
/// Called on the pipeline's thread: keep it short.
pub trait CycleObserver: Send {
    /// A cycle's values were checkpointed and published.
    fn cycle_published(&mut self, cycle: &PublishedCycle<'_>);
}

/// The schedule's settings.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// The node.
    pub node_name: String,
    /// Period of full dumps.
    pub interval: Duration,
    /// Period of event draining between dumps.
    pub drain_period: Duration,
    /// Traffic log period; `None` turns the log off.
    pub traffic_log_interval: Option<Duration>,
}

/// The agent's state between two ticks. See the module docs.
pub struct AgentLoop<S, C> {
    settings: LoopSettings,
    pipeline: Pipeline,
    source: S,
    checkpointer: C,
    observers: Vec<Box<dyn CycleObserver>>,
    shared: Arc<Shared>,
    events: Option<Arc<EventStatus>>,
    host_network: exposition::HostNetworkStatus,
    topology: Arc<Topology>,
    topology_updates: Option<tokio::sync::watch::Receiver<Arc<Topology>>>,
    pods: Arc<Vec<PodMeta>>,
    timing: CycleTiming,
    /// The clock's origin: `Instant` for the schedule, Unix milliseconds for the pipeline.
    origin: (Instant, u64),
    next_dump: Instant,
    next_drain: Instant,
    next_traffic_log: Option<Instant>,
    /// DESTROY events read when the last interim checkpoint was written.
    interim_events: u64,
}

impl<S: FlowSource, C: Checkpointer> AgentLoop<S, C> {
    /// A loop whose first cycle is due at `now`, which is Unix time `now_unix_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: LoopSettings,
        pipeline: Pipeline,
        source: S,
        checkpointer: C,
        shared: Arc<Shared>,
        topology: Arc<Topology>,
        topology_updates: Option<tokio::sync::watch::Receiver<Arc<Topology>>>,
        (now, now_unix_ms): (Instant, u64),
    ) -> Self {
        let pods = Arc::new(exposition::pod_metadata(&topology, &settings.node_name));
        let timing = CycleTiming {
            nodes_without_zone: crate::nodes_without_zone(&topology),
            ..CycleTiming::default()
        };
        AgentLoop {
            next_traffic_log: settings.traffic_log_interval.map(|d| now + d),
            settings,
            pipeline,
            source,
            checkpointer,
            observers: Vec::new(),
            shared,
            events: None,
            host_network: exposition::HostNetworkStatus::default(),
            topology,
            topology_updates,
            pods,
            timing,
            origin: (now, now_unix_ms),
            next_dump: now,
            next_drain: now,
            interim_events: 0,
        }
    }

    /// Exports whether hostNetwork pods' bytes are looked up by socket, and how it goes, with
    /// every cycle.
    pub fn with_host_network(mut self, status: exposition::HostNetworkStatus) -> Self {
        self.host_network = status;
        self
    }

    /// Exports the event reader's figures (reliable delivery, the valve) with every cycle.
    pub fn with_event_status(mut self, events: Option<Arc<EventStatus>>) -> Self {
        self.events = events;
        self
    }

    /// Adds an observer of published cycles.
    pub fn observe(&mut self, observer: Box<dyn CycleObserver>) {
        self.observers.push(observer);
    }

    /// The pipeline, for tests.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The source, for tests.
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let (instant, unix_ms) = self.origin;
        unix_ms + now.saturating_duration_since(instant).as_millis() as u64
    }

    /// Does what is due at `now` and returns when to call again. With `stopping`, it runs a
    /// last cycle and checkpoint whatever the schedule says (SIGTERM).
    pub fn tick(&mut self, now: Instant, stopping: bool) -> Instant {
        let now_ms = self.unix_ms(now);
        self.take_updates(now_ms);
        if now >= self.next_dump || stopping {
            self.cycle(now, now_ms);
            self.next_dump = now + self.settings.interval;
            self.next_drain = now + self.settings.drain_period;
        } else if now >= self.next_drain {
            match self.pipeline.drain_events(&mut self.source, now_ms) {
                Ok(read) if read.events_lost > 0 => tracing::warn!(
                    lost = read.events_lost,
                    "conntrack events were lost (ENOBUFS): the entries they ended lose the bytes \
                     since their last dump"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading conntrack events failed"),
            }
            self.save_interim();
            self.next_drain = now + self.settings.drain_period;
        }
        self.shared.beat();
        if let Some(at) = self.next_traffic_log
            && now >= at
        {
            traffic_log::write(
                &self
                    .pipeline
                    .take_traffic_log(traffic_log::TOP_DESTINATIONS),
            );
            self.next_traffic_log = self.settings.traffic_log_interval.map(|d| at + d);
        }
        let mut next = self.next_dump.min(self.next_drain);
        if let Some(at) = self.next_traffic_log {
            next = next.min(at);
        }
        next
    }

    /// An interim checkpoint, when events counted something since the last one.
    fn save_interim(&mut self) {
        let events = self.pipeline.destroy_events_read();
        if events == self.interim_events {
            return;
        }
        match self.checkpointer.save_interim(&self.pipeline) {
            Ok(()) => self.interim_events = events,
            Err(e) => {
                self.timing.checkpoint_failures += 1;
                tracing::warn!(error = %e, "interim checkpoint not written");
            }
        }
    }

    /// A new topology (from the watchers) or new cloud ranges, if there are.
    fn take_updates(&mut self, now_ms: u64) {
        // A closed channel (the watchers are gone) keeps the last topology: counting goes on.
        if let Some(updates) = &mut self.topology_updates
            && updates.has_changed().unwrap_or(false)
        {
            self.topology = updates.borrow_and_update().clone();
            self.timing.nodes_without_zone = crate::nodes_without_zone(&self.topology);
            self.timing.topology_updates += 1;
            self.pods = Arc::new(exposition::pod_metadata(
                &self.topology,
                &self.settings.node_name,
            ));
            self.pipeline.set_topology(self.topology.clone(), now_ms);
        }
        if let Some(ranges) = self.shared.cloud.take_ranges() {
            self.pipeline.set_classifier(
                self.pipeline
                    .classifier()
                    .clone()
                    .with_provider_ranges(ranges),
            );
        }
    }

    fn cycle(&mut self, now: Instant, now_ms: u64) {
        self.pipeline
            .note_scraped(self.shared.scraped_generation.load(Ordering::Relaxed));
        let started = Instant::now();
        let result = self.pipeline.dump_cycle(&mut self.source, now_ms);
        // The cycle's own duration is measured, not injected: it is a figure, not a schedule.
        self.timing.cycle_seconds = started.elapsed().as_secs_f64();
        self.timing.last_cycle_unix_seconds = now_ms as f64 / 1000.0;
        let cycle_ok = result.is_ok();
        let not_ready = !self.shared.ready.load(Ordering::Relaxed);
        match result {
            Ok(read) if read.events_lost > 0 => tracing::warn!(
                lost = read.events_lost,
                "conntrack events were lost (ENOBUFS) during the cycle"
            ),
            Ok(_) => {}
            Err(e) => {
                self.timing.cycle_failures += 1;
                tracing::error!(error = %e, "conntrack dump failed; retrying next cycle");
                if not_ready {
                    self.shared.set_not_ready_because(Some(format!(
                        "the conntrack dump failed ({e}); retrying every cycle"
                    )));
                }
            }
        }
        match self.checkpointer.save(&self.pipeline) {
            Ok(()) => {
                // The checkpoint holds every event so far: nothing for an interim to add.
                self.interim_events = self.pipeline.destroy_events_read();
                let snapshot = Arc::new(self.pipeline.snapshot());
                self.shared.publish(Exposition {
                    snapshot: snapshot.clone(),
                    timing: self.timing,
                    pods: self.pods.clone(),
                    events: self.events.clone(),
                    host_network: self.host_network.clone(),
                });
                if cycle_ok {
                    self.shared.ready.store(true, Ordering::Relaxed);
                    self.shared.set_not_ready_because(None);
                }
                let published = PublishedCycle {
                    snapshot: &snapshot,
                    topology: &self.topology,
                    timing: &self.timing,
                    unix_ms: now_ms,
                };
                for observer in &mut self.observers {
                    observer.cycle_published(&published);
                }
            }
            Err(e) => {
                // Publishing values the checkpoint does not hold would let a crash take the
                // counters backwards, which Prometheus reads as a reset and counts twice.
                // Keep serving the last checkpointed values; counting goes on in memory.
                self.timing.checkpoint_failures += 1;
                self.shared.publish_timing(self.timing);
                if not_ready {
                    self.shared.set_not_ready_because(Some(format!(
                        "the checkpoint cannot be written ({e}), and /metrics serves only \
                         checkpointed values; make the state file's directory writable for the \
                         agent's user"
                    )));
                }
                tracing::error!(error = %e, "checkpoint not written; /metrics keeps the last checkpointed values until a write succeeds");
            }
        }
        tracing::debug!(
            seconds = self.timing.cycle_seconds,
            at = ?now,
            "cycle done"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use netcost_core::classify::Classifier;
    use netcost_core::config::ClassificationConfig;
    use netcost_core::flow::{FlowRecord, ReadStats};
    use netcost_core::pipeline::PipelineConfig;

    use super::*;

    /// A source that records what it was asked to do.
    #[derive(Default)]
    struct Script {
        dumps: usize,
        drains: usize,
        /// The next drain reports lost events (ENOBUFS).
        lose_next_drain: bool,
        /// DESTROY events the next drain hands out.
        ended: Vec<FlowRecord>,
    }

    impl FlowSource for Script {
        type Error = Infallible;
        fn dump(&mut self, _: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Infallible> {
            self.dumps += 1;
            Ok(ReadStats::default())
        }
        fn drain_destroyed(
            &mut self,
            sink: &mut dyn FnMut(&FlowRecord),
        ) -> Result<ReadStats, Infallible> {
            self.drains += 1;
            let events_lost = u64::from(std::mem::take(&mut self.lose_next_drain));
            let ended = std::mem::take(&mut self.ended);
            ended.iter().for_each(&mut *sink);
            Ok(ReadStats {
                events_lost,
                entries: ended.len() as u64,
                ..ReadStats::default()
            })
        }
    }

    /// Counts saves; fails them while `failing` is set.
    #[derive(Clone, Default)]
    struct FakeCheckpointer {
        saves: Arc<Mutex<(usize, bool)>>,
        interims: Arc<Mutex<usize>>,
    }

    impl FakeCheckpointer {
        fn set_failing(&self, failing: bool) {
            self.saves.lock().unwrap_or_else(PoisonError::into_inner).1 = failing;
        }
        fn saved(&self) -> usize {
            self.saves.lock().unwrap_or_else(PoisonError::into_inner).0
        }
    }

    use std::sync::PoisonError;

    impl Checkpointer for FakeCheckpointer {
        fn save(&mut self, _: &Pipeline) -> Result<(), StateFileError> {
            let mut saves = self.saves.lock().unwrap_or_else(PoisonError::into_inner);
            if saves.1 {
                return Err(StateFileError::Io {
                    path: "/state".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            saves.0 += 1;
            Ok(())
        }
        fn save_interim(&mut self, _: &Pipeline) -> Result<(), StateFileError> {
            *self.interims.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            Ok(())
        }
    }

    /// Counts the cycles it is told of.
    struct Counting(Arc<Mutex<Vec<u64>>>);

    impl CycleObserver for Counting {
        fn cycle_published(&mut self, cycle: &PublishedCycle<'_>) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(cycle.snapshot.stats.cycles);
        }
    }

    const INTERVAL: Duration = Duration::from_secs(10);
    const DRAIN: Duration = Duration::from_millis(200);

    fn agent(
        checkpointer: FakeCheckpointer,
        t0: Instant,
    ) -> (AgentLoop<Script, FakeCheckpointer>, Arc<Shared>) {
        let topology = Arc::new(Topology::default());
        let pipeline = Pipeline::new(
            PipelineConfig::new("node-a"),
            topology.clone(),
            Classifier::new(ClassificationConfig::kubecost_default()),
        );
        let shared = Arc::new(Shared::new(
            Exposition {
                snapshot: Arc::new(pipeline.snapshot()),
                timing: CycleTiming::default(),
                pods: Arc::default(),
                events: None,
                host_network: Default::default(),
            },
            30_000,
        ));
        let settings = LoopSettings {
            node_name: "node-a".into(),
            interval: INTERVAL,
            drain_period: DRAIN,
            traffic_log_interval: None,
        };
        let agent = AgentLoop::new(
            settings,
            pipeline,
            Script::default(),
            checkpointer,
            shared.clone(),
            topology,
            None,
            (t0, 1_764_000_000_000),
        );
        (agent, shared)
    }

    fn published_cycles(shared: &Shared) -> u64 {
        shared.exposition().snapshot.stats.cycles
    }

    #[test]
    fn a_cycle_runs_at_once_then_events_drain_between_cycles() {
        let t0 = Instant::now();
        let (mut agent, shared) = agent(FakeCheckpointer::default(), t0);
        assert!(!shared.ready.load(Ordering::Relaxed));
        assert_eq!(agent.tick(t0, false), t0 + DRAIN);
        assert_eq!(published_cycles(&shared), 1);
        assert!(shared.ready.load(Ordering::Relaxed));
        // Drain periods until the interval is over: events only, no dump.
        let mut now = t0 + DRAIN;
        while now < t0 + INTERVAL {
            let next = agent.tick(now, false);
            assert!(next > now && next <= t0 + INTERVAL);
            now = next;
        }
        assert_eq!(agent.source_mut().dumps, 1);
        // 49 drain periods between the two dumps, and the cycle's own drains before and after
        // its dump.
        assert_eq!(agent.source_mut().drains, 2 + 49);
        agent.tick(t0 + INTERVAL, false);
        assert_eq!(published_cycles(&shared), 2);
        // Time in the pipeline is the injected clock's.
        let at = shared.exposition().timing.last_cycle_unix_seconds;
        assert_eq!(at, 1_764_000_010.0);
    }

    #[test]
    fn a_failed_checkpoint_keeps_serving_the_last_checkpointed_values() {
        let t0 = Instant::now();
        let checkpointer = FakeCheckpointer::default();
        let (mut agent, shared) = agent(checkpointer.clone(), t0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        agent.observe(Box::new(Counting(seen.clone())));
        agent.tick(t0, false);
        checkpointer.set_failing(true);
        agent.tick(t0 + INTERVAL, false);
        // The pipeline counted on, but /metrics shows only what the checkpoint holds.
        assert_eq!(agent.pipeline().snapshot().stats.cycles, 2);
        assert_eq!(published_cycles(&shared), 1);
        assert_eq!(shared.exposition().timing.checkpoint_failures, 1);
        checkpointer.set_failing(false);
        agent.tick(t0 + INTERVAL * 2, false);
        assert_eq!(published_cycles(&shared), 3);
        assert_eq!(checkpointer.saved(), 2);
        // Observers hear of published cycles only.
        assert_eq!(*seen.lock().unwrap_or_else(PoisonError::into_inner), [1, 3]);
    }

    #[test]
    fn stopping_runs_a_last_cycle_and_checkpoint_at_once() {
        let t0 = Instant::now();
        let checkpointer = FakeCheckpointer::default();
        let (mut agent, shared) = agent(checkpointer.clone(), t0);
        agent.tick(t0, false);
        agent.tick(t0 + Duration::from_millis(1), true);
        assert_eq!(checkpointer.saved(), 2);
        assert_eq!(published_cycles(&shared), 2);
    }

    #[test]
    fn lost_events_are_counted_without_an_extra_dump() {
        let t0 = Instant::now();
        let (mut agent, shared) = agent(FakeCheckpointer::default(), t0);
        agent.tick(t0, false);
        agent.source_mut().lose_next_drain = true;
        let next = agent.tick(t0 + DRAIN, false);
        // A dump cannot bring back flows that ended unseen; the schedule stays as it was.
        assert_eq!(next, t0 + DRAIN * 2);
        assert_eq!(agent.source_mut().dumps, 1);
        agent.tick(t0 + INTERVAL, false);
        assert_eq!(shared.exposition().snapshot.stats.events_lost, 1);
    }

    #[test]
    fn events_between_cycles_are_kept_in_an_interim_checkpoint_once() {
        let t0 = Instant::now();
        let checkpointer = FakeCheckpointer::default();
        let (mut agent, _) = agent(checkpointer.clone(), t0);
        let interims = || {
            *checkpointer
                .interims
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        agent.tick(t0, false);
        // A drain with nothing new writes nothing.
        agent.tick(t0 + DRAIN, false);
        assert_eq!(interims(), 0);
        let a = std::net::SocketAddr::from(([10, 9, 0, 1], 4000));
        let b = std::net::SocketAddr::from(([10, 9, 0, 2], 53));
        agent.source_mut().ended = vec![FlowRecord::tcp(7, a, b, 100, 50)];
        agent.tick(t0 + DRAIN * 2, false);
        assert_eq!(interims(), 1);
        agent.tick(t0 + DRAIN * 3, false);
        assert_eq!(interims(), 1, "nothing new since");
    }

    #[test]
    fn readyz_says_why_when_the_first_checkpoint_cannot_be_written() {
        let t0 = Instant::now();
        let checkpointer = FakeCheckpointer::default();
        let (mut agent, shared) = agent(checkpointer.clone(), t0);
        assert_eq!(shared.not_ready_because(), None);
        checkpointer.set_failing(true);
        agent.tick(t0, false);
        assert!(!shared.ready.load(Ordering::Relaxed));
        let why = shared.not_ready_because().unwrap_or_default();
        assert!(
            why.contains("disk full") && why.contains("writable"),
            "{why}"
        );
        checkpointer.set_failing(false);
        agent.tick(t0 + INTERVAL, false);
        assert!(shared.ready.load(Ordering::Relaxed));
        assert_eq!(shared.not_ready_because(), None);
    }
}
