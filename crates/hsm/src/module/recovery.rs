//! Recovery after a fault: every session is dropped and each key in use is found again,
//! first on the current initialisation (a logout), then after `C_Finalize` +
//! `C_Initialize` (a token that left and came back), with backoff; a refused PIN is not
//! tried again until the PIN file changes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Ctx, Fault, Module, load};
use crate::metrics::ErrorKind;
use crate::objects::find_private;
use crate::uri::KeyUri;

/// Recovery backoff: first wait and ceiling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

impl Module {
    /// Marks the module broken and starts recovery (once).
    pub(super) fn fault(self: &Arc<Self>, cause: &Fault) {
        self.broken.store(true, Ordering::Release);
        if self.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(module = %self.path.display(), kind = cause.kind.as_str(), error = %cause, "HSM fault; signatures answer UNAVAILABLE until the token is reopened");
        let module = self.clone();
        let spawned = std::thread::Builder::new()
            .name("hsm-recovery".into())
            .spawn(move || module.recover());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the HSM recovery thread");
            self.recovering.store(false, Ordering::Release);
        }
    }

    /// Reopens with backoff until every key in use is found again.
    fn recover(&self) {
        let mut wait = RETRY_FIRST;
        let mut last = String::new();
        let mut refused_pin: Option<Vec<u8>> = None;
        let started = Instant::now();
        loop {
            std::thread::sleep(wait);
            match self.reopen(&mut refused_pin) {
                Ok(()) => {
                    self.broken.store(false, Ordering::Release);
                    self.recovering.store(false, Ordering::Release);
                    let metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
                    for m in metrics.iter().filter_map(Weak::upgrade) {
                        m.recoveries.inc();
                    }
                    tracing::info!(module = %self.path.display(), after = ?started.elapsed(), "HSM token reopened; signing again");
                    return;
                }
                Err(e) => {
                    if e.message != last {
                        tracing::warn!(kind = e.kind.as_str(), error = %e, "HSM still unavailable; retrying with backoff");
                        last = e.message;
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Drops every session, then finds each key again: first on the current
    /// initialisation (a logout), then after `C_Finalize` + `C_Initialize` (a token that
    /// left and came back).
    fn reopen(&self, refused_pin: &mut Option<Vec<u8>>) -> Result<(), Fault> {
        let mut ctx = self.ctx.write().unwrap_or_else(|e| e.into_inner());
        self.reset(&mut ctx);
        let pin = self.read_pin()?;
        if refused_pin.as_deref() == Some(pin.as_bytes()) {
            return Err(Fault::new(
                ErrorKind::PinIncorrect,
                "the token refused the PIN in hsm.pin_file; not retried until the file changes",
            ));
        }
        let keys: Vec<Arc<KeyUri>> = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.retain(|k| k.strong_count() > 0);
            keys.iter().filter_map(Weak::upgrade).collect()
        };
        let light = self.find_all(&mut ctx, &keys);
        let result = match light {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::PinIncorrect => Err(e),
            Err(_) => {
                self.reset(&mut ctx);
                if let Some(lib) = ctx.lib.take() {
                    let _ = lib.finalize();
                }
                ctx.lib = Some(load(&self.path)?);
                self.find_all(&mut ctx, &keys)
            }
        };
        if let Err(e) = &result
            && e.kind == ErrorKind::PinIncorrect
        {
            *refused_pin = Some(pin.into_bytes());
        }
        result
    }

    fn reset(&self, ctx: &mut Ctx) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.clear();
        self.open.store(0, Ordering::Release);
        ctx.generation += 1;
        ctx.logged_in.clear();
    }

    fn find_all(&self, ctx: &mut Ctx, keys: &[Arc<KeyUri>]) -> Result<(), Fault> {
        for key in keys {
            let session = self.open_session(ctx, key)?;
            find_private(&session, key)?;
        }
        Ok(())
    }
}
