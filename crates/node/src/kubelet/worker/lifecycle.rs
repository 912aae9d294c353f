//! The pod worker's states and the only moves between them.
//!
//! Each state's step returns its own type, which names only the moves legal from that
//! state, and [`Lifecycle::apply`] is the one place that turns a move into the next state.
//! The state itself is private here, so no other code can set it: a worker cannot go from
//! Init to Terminated without stopping its containers first.
//!
//! ```text
//! Setup ─▶ Init ─▶ Running ─▶ Terminating ─▶ Terminated ─▶ Done
//!   └───────┴────────┴──── stop ───▲
//! ```

/// Where a pod is in its life on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Setup,
    Init,
    Running,
    Terminating,
    Terminated,
    /// Cleaned up; the worker ends.
    Done,
}

/// The moves out of Setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromSetup {
    Stay,
    /// The sandbox and volumes are ready: run the init containers.
    Ready,
}

/// The moves out of Init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromInit {
    Stay,
    /// Every init container exited 0: start the containers.
    Done,
    /// An init container failed for good: the pod stops.
    Failed,
}

/// The moves out of Running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromRunning {
    Stay,
    /// Every container exited and none restarts: the pod stops.
    Finished,
}

/// The one move out of Terminating: every container was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped;

/// The moves out of Terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromTerminated {
    Stay,
    /// The sandbox, volumes and pod object are gone.
    CleanedUp,
}

/// A step's outcome, tagged with the state that took it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Setup(FromSetup),
    Init(FromInit),
    Running(FromRunning),
    Terminating(Stopped),
    Terminated(FromTerminated),
}

/// A pod worker's state, changed only by [`Lifecycle::apply`] and [`Lifecycle::stop`].
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: Phase::Setup,
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the pod's containers may still be started.
    pub fn starting_or_running(&self) -> bool {
        matches!(self.phase, Phase::Setup | Phase::Init | Phase::Running)
    }

    /// Stops the pod (deleted, evicted, past its deadline): from Setup, Init or Running it
    /// goes to Terminating; a pod already stopping stays where it is. Returns whether it
    /// moved.
    pub fn stop(&mut self) -> bool {
        let moved = self.starting_or_running();
        if moved {
            self.phase = Phase::Terminating;
        }
        moved
    }

    /// Takes a step's move. A move from a state the worker is not in is a bug in the
    /// caller; it is logged and ignored rather than obeyed.
    pub fn apply(&mut self, m: Move) {
        self.phase = match (self.phase, m) {
            (Phase::Setup, Move::Setup(FromSetup::Stay)) => Phase::Setup,
            (Phase::Setup, Move::Setup(FromSetup::Ready)) => Phase::Init,
            (Phase::Init, Move::Init(FromInit::Stay)) => Phase::Init,
            (Phase::Init, Move::Init(FromInit::Done)) => Phase::Running,
            (Phase::Init, Move::Init(FromInit::Failed)) => Phase::Terminating,
            (Phase::Running, Move::Running(FromRunning::Stay)) => Phase::Running,
            (Phase::Running, Move::Running(FromRunning::Finished)) => Phase::Terminating,
            (Phase::Terminating, Move::Terminating(Stopped)) => Phase::Terminated,
            (Phase::Terminated, Move::Terminated(FromTerminated::Stay)) => Phase::Terminated,
            (Phase::Terminated, Move::Terminated(FromTerminated::CleanedUp)) => Phase::Done,
            (phase, m) => {
                tracing::error!(?phase, ?m, "a pod worker move from another state");
                phase
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: Phase) -> Lifecycle {
        Lifecycle { phase }
    }

    #[test]
    fn every_legal_move_and_where_it_leads() {
        use Phase::*;
        let table = [
            (Setup, Move::Setup(FromSetup::Stay), Setup),
            (Setup, Move::Setup(FromSetup::Ready), Init),
            (Init, Move::Init(FromInit::Stay), Init),
            (Init, Move::Init(FromInit::Done), Running),
            (Init, Move::Init(FromInit::Failed), Terminating),
            (Running, Move::Running(FromRunning::Stay), Running),
            (Running, Move::Running(FromRunning::Finished), Terminating),
            (Terminating, Move::Terminating(Stopped), Terminated),
            (
                Terminated,
                Move::Terminated(FromTerminated::Stay),
                Terminated,
            ),
            (
                Terminated,
                Move::Terminated(FromTerminated::CleanedUp),
                Done,
            ),
        ];
        for (from, m, to) in table {
            let mut l = at(from);
            l.apply(m);
            assert_eq!(l.phase(), to, "{from:?} + {m:?}");
        }
    }

    #[test]
    fn a_move_from_another_state_is_ignored() {
        // A failed init container cannot skip Terminating, and a finished worker stays done.
        let mut l = at(Phase::Terminated);
        l.apply(Move::Init(FromInit::Failed));
        assert_eq!(l.phase(), Phase::Terminated);
        let mut l = at(Phase::Done);
        l.apply(Move::Setup(FromSetup::Ready));
        assert_eq!(l.phase(), Phase::Done);
        let mut l = at(Phase::Setup);
        l.apply(Move::Terminating(Stopped));
        assert_eq!(l.phase(), Phase::Setup);
    }

    #[test]
    fn stop_reaches_terminating_only_from_the_live_states() {
        use Phase::*;
        for (from, to, moved) in [
            (Setup, Terminating, true),
            (Init, Terminating, true),
            (Running, Terminating, true),
            (Terminating, Terminating, false),
            (Terminated, Terminated, false),
            (Done, Done, false),
        ] {
            let mut l = at(from);
            assert_eq!(l.stop(), moved, "{from:?}");
            assert_eq!(l.phase(), to, "{from:?}");
        }
    }
}
