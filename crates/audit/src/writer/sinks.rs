//! One batch to every sink. Under `refuse` a batch is in every sink or in none: sinks that
//! can take a batch back are written first and undo it when a later one fails, a stream is
//! written last. Under `continue` a batch some sink missed stays in the others, and that
//! sink is left out (behind) until a probe writes to it again; the next `gap` record then
//! names the range it lacks and links to its last line.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use crate::config::OnFailure;
use crate::record::Missed;
use crate::sink::Sink;

/// The sinks, in write order.
pub(super) struct Sinks {
    slots: Vec<Slot>,
    policy: OnFailure,
    shared: Arc<Shared>,
}

/// A sink and, under `continue`, the records it missed.
struct Slot {
    sink: Box<dyn Sink>,
    behind: Option<Behind>,
}

/// A sink missed seq `from` onwards; `after` is the hash of the last line it holds.
struct Behind {
    from: u64,
    after: String,
}

/// What became of one batch.
pub(super) struct Written {
    /// Every sink took it.
    pub all: bool,
    /// Which sinks hold it (when any does, the chain advances).
    pub took: Vec<bool>,
    /// The sink that failed, and how.
    pub failed: Option<(&'static str, io::Error)>,
    /// Under `refuse`: sinks that hold the batch although another failed, because they
    /// could not take it back.
    pub kept: Vec<&'static str>,
}

impl Written {
    pub fn advanced(&self) -> bool {
        self.took.iter().any(|t| *t)
    }
}

impl Sinks {
    pub fn new(mut sinks: Vec<Box<dyn Sink>>, policy: OnFailure, shared: Arc<Shared>) -> Self {
        sinks.sort_by_key(|s| !s.can_undo());
        let slots = sinks
            .into_iter()
            .map(|sink| Slot { sink, behind: None })
            .collect();
        Self {
            slots,
            policy,
            shared,
        }
    }

    /// Writes `buf` to the sinks (those behind only when `all_sinks`). Under `refuse` it
    /// is all or nothing: at the first failure the sinks written are undone.
    pub fn write(&mut self, buf: &[u8], all_sinks: bool) -> Written {
        let mut took = vec![false; self.slots.len()];
        let mut failed = None;
        let mut skipped = false;
        if self.shared.fail.load(Ordering::Acquire) {
            failed = Some(("injected", injected()));
        } else {
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if slot.behind.is_some() && !all_sinks {
                    skipped = true;
                    continue;
                }
                match slot.sink.write(buf) {
                    Ok(()) => took[i] = true,
                    Err(e) => {
                        failed = Some((slot.sink.name(), e));
                        if self.policy == OnFailure::Refuse {
                            break;
                        }
                    }
                }
            }
        }
        let mut kept = Vec::new();
        if failed.is_some() && self.policy == OnFailure::Refuse {
            for (slot, took) in self.slots.iter_mut().zip(took.iter_mut()) {
                if !*took {
                    continue;
                }
                match slot.sink.undo() {
                    Ok(()) => *took = false,
                    Err(_) => kept.push(slot.sink.name()),
                }
            }
        }
        Written {
            all: failed.is_none() && !skipped,
            took,
            failed,
            kept,
        }
    }

    /// Every sink proves that `room` bytes fit now (a probe before writing to a sink that
    /// failed).
    pub fn reserve(&mut self, room: usize) -> io::Result<()> {
        if self.shared.fail.load(Ordering::Acquire) {
            return Err(injected());
        }
        self.slots
            .iter_mut()
            .try_for_each(|slot| slot.sink.reserve(room))
    }

    /// A batch whose first seq is `from` is in the sinks `took`; `after` is the hash of the
    /// line before it. The others are behind from `from` (unless they already were).
    pub fn advance(&mut self, took: &[bool], from: u64, after: &str) {
        for (slot, took) in self.slots.iter_mut().zip(took) {
            if *took {
                slot.behind = None;
            } else if slot.behind.is_none() {
                slot.behind = Some(Behind {
                    from,
                    after: after.to_owned(),
                });
            }
        }
    }

    /// The ranges the sinks behind lack, up to seq `next_seq - 1`.
    pub fn missed(&self, next_seq: u64) -> Vec<Missed> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let b = slot.behind.as_ref()?;
                Some(Missed {
                    sink: slot.sink.name().to_owned(),
                    from: b.from,
                    to: next_seq.checked_sub(1)?,
                    after: b.after.clone(),
                })
            })
            .collect()
    }
}

fn injected() -> io::Error {
    io::Error::other("injected write failure")
}
