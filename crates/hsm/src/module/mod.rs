//! A PKCS#11 module, loaded and initialised once per process and library path (a second
//! `C_Initialize` in one process is an error), with a pool of logged-in sessions per token
//! and recovery after a fault.
//!
//! What the module is shown to do under faults (SoftHSM2 2.6, see the HSM issue) shapes
//! this: it is initialised for OS locking (signing from several threads without it
//! crashed); a lost token, a logout and a deleted object all surface as invalid handles,
//! so after any fault every session and handle is dropped, the token is found by label
//! again and the user logged in again; a token that came back is only seen after
//! `C_Finalize` + `C_Initialize`, which must not run while another thread signs, so each
//! signature holds a read lock and recovery the write lock; a refused PIN is never tried
//! again until the PIN file changes (real HSMs lock the PIN after a few tries).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

mod recovery;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use crate::fault::Fault;
use crate::metrics::ErrorKind;
use crate::settings::HsmConfig;
use crate::uri::KeyUri;

/// How long a signature waits for a free session before it answers UNAVAILABLE.
const POOL_WAIT: Duration = Duration::from_secs(2);

/// The library and what holds for this initialisation of it.
struct Ctx {
    lib: Option<Pkcs11>,
    /// Bumped by every recovery: sessions of an older generation are never used again.
    generation: u64,
    logged_in: HashSet<String>,
}

struct Pooled {
    token: String,
    generation: u64,
    session: Session,
}

/// One PKCS#11 library in this process.
pub struct Module {
    path: PathBuf,
    pin_file: PathBuf,
    max_sessions: usize,
    ctx: RwLock<Ctx>,
    /// A fault was seen: signatures answer UNAVAILABLE until recovery succeeds.
    broken: AtomicBool,
    recovering: AtomicBool,
    idle: Mutex<Vec<Pooled>>,
    freed: Condvar,
    open: AtomicUsize,
    busy: AtomicUsize,
    /// Signatures waiting for a session (`freed` is notified only when there are some:
    /// a notification is a system call).
    waiting: AtomicUsize,
    /// Keys in use: recovery succeeds only when each is found again.
    keys: Mutex<Vec<Weak<KeyUri>>>,
    /// The metrics of every server using this module (recoveries are counted in each).
    metrics: Mutex<Vec<Weak<crate::Metrics>>>,
}

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();

impl Module {
    /// The module at `cfg.module`, loaded and initialised on first use in this process.
    pub fn get(cfg: &HsmConfig) -> Result<Arc<Self>, Fault> {
        let modules = MODULES.get_or_init(Mutex::default);
        let mut modules = modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(&cfg.module) {
            return Ok(m.clone());
        }
        let lib = load(&cfg.module)?;
        let module = Arc::new(Self {
            path: cfg.module.clone(),
            pin_file: cfg.pin_file.clone(),
            max_sessions: cfg.sessions,
            ctx: RwLock::new(Ctx {
                lib: Some(lib),
                generation: 0,
                logged_in: HashSet::new(),
            }),
            broken: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
            idle: Mutex::default(),
            freed: Condvar::new(),
            open: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            keys: Mutex::default(),
            metrics: Mutex::default(),
        });
        modules.insert(cfg.module.clone(), module.clone());
        Ok(module)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False while a fault is being recovered from.
    pub fn available(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
    }

    /// (sessions open, sessions signing now).
    pub fn sessions(&self) -> (usize, usize) {
        (
            self.open.load(Ordering::Acquire),
            self.busy.load(Ordering::Acquire),
        )
    }

    /// Recoveries are counted in `metrics` too.
    pub(crate) fn count_into(&self, metrics: &Arc<crate::Metrics>) {
        let mut all = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|m| m.strong_count() > 0);
        all.push(Arc::downgrade(metrics));
    }

    /// Recovery will look for this key again.
    pub(crate) fn track(&self, key: &Arc<KeyUri>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|k| k.strong_count() > 0);
        keys.push(Arc::downgrade(key));
    }

    /// Runs `f` on a logged-in session of `uri`'s token, with the generation of this
    /// initialisation (what handles found under it may be cached by). Any error marks the module
    /// broken and starts recovery (the same codes mean "token gone", "logged out" and
    /// "object deleted", so nothing of this initialisation is trusted afterwards).
    pub(crate) fn with_session<T>(
        self: &Arc<Self>,
        uri: &KeyUri,
        f: impl FnOnce(&Session, u64) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        if !self.available() {
            return Err(Fault::new(
                ErrorKind::TokenGone,
                "the token is unavailable; reconnecting",
            ));
        }
        let ctx = self.ctx.read().unwrap_or_else(|e| e.into_inner());
        let result = self.take(&ctx, uri).and_then(|pooled| {
            self.busy.fetch_add(1, Ordering::AcqRel);
            let out = f(&pooled.session, pooled.generation);
            self.busy.fetch_sub(1, Ordering::AcqRel);
            match out {
                Ok(v) => {
                    self.give_back(pooled);
                    Ok(v)
                }
                Err(e) => {
                    drop(pooled);
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    self.wake();
                    Err(e)
                }
            }
        });
        drop(ctx);
        if let Err(e) = &result
            && e.kind != ErrorKind::PoolExhausted
        {
            self.fault(e);
        }
        result
    }

    /// A session for `uri`'s token: an idle one of this generation, a new one while
    /// fewer than `max_sessions` are open, or the next one freed (bounded wait).
    fn take(&self, ctx: &Ctx, uri: &KeyUri) -> Result<Pooled, Fault> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = idle
                .iter()
                .position(|p| p.token == uri.token && p.generation == ctx.generation)
            {
                return Ok(idle.swap_remove(i));
            }
            if self.open.load(Ordering::Acquire) < self.max_sessions {
                self.open.fetch_add(1, Ordering::AcqRel);
                drop(idle);
                return match self.open_logged_in(ctx, uri) {
                    Ok(session) => Ok(Pooled {
                        token: uri.token.clone(),
                        generation: ctx.generation,
                        session,
                    }),
                    Err(e) => {
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Fault::new(
                    ErrorKind::PoolExhausted,
                    format!(
                        "all {} HSM sessions stayed busy for {POOL_WAIT:?}; raise hsm.sessions",
                        self.max_sessions
                    ),
                ));
            }
            self.waiting.fetch_add(1, Ordering::AcqRel);
            idle = self
                .freed
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn give_back(&self, pooled: Pooled) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(pooled);
        drop(idle);
        self.wake();
    }

    fn wake(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.freed.notify_one();
        }
    }

    /// Opens a session during normal signing: login state is shared, so only the first
    /// session of a token in this generation logs in (under the read lock, concurrent
    /// first logins may race; "already logged in" is success).
    fn open_logged_in(&self, ctx: &Ctx, uri: &KeyUri) -> Result<Session, Fault> {
        let session = open(ctx, uri, false)?;
        login(&session, &self.read_pin()?)?;
        Ok(session)
    }

    /// Opens a session under the write lock (recovery, key lookup): logs in once per
    /// generation.
    fn open_session(&self, ctx: &mut Ctx, uri: &KeyUri) -> Result<Session, Fault> {
        let session = open(ctx, uri, false)?;
        if ctx.logged_in.insert(uri.token.clone()) {
            login(&session, &self.read_pin()?).inspect_err(|_| {
                ctx.logged_in.remove(&uri.token);
            })?;
        }
        Ok(session)
    }

    /// Runs `f` on a fresh logged-in session outside the pool (key lookup and generation,
    /// which are rare). Errors do not break the module: they concern one key.
    pub(crate) fn one_off<T>(
        &self,
        uri: &KeyUri,
        rw: bool,
        f: impl FnOnce(&Session) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let ctx = self.ctx.read().unwrap_or_else(|e| e.into_inner());
        let session = open(&ctx, uri, rw)?;
        login(&session, &self.read_pin()?)?;
        f(&session)
    }

    fn read_pin(&self) -> Result<String, Fault> {
        let text = std::fs::read_to_string(&self.pin_file).map_err(|e| {
            Fault::new(
                ErrorKind::Module,
                format!(
                    "cannot read hsm.pin_file {}: {e}; mount the PIN Secret there",
                    self.pin_file.display()
                ),
            )
        })?;
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    }
}

/// A session on `uri`'s token (found by label now), not yet logged in.
fn open(ctx: &Ctx, uri: &KeyUri, rw: bool) -> Result<Session, Fault> {
    let lib = ctx.lib.as_ref().ok_or(Fault::new(
        ErrorKind::Module,
        "the PKCS#11 module is not loaded",
    ))?;
    let slot = find_slot(lib, uri)?;
    match rw {
        true => lib.open_rw_session(slot),
        false => lib.open_ro_session(slot),
    }
    .map_err(|e| Fault::from_ck("opening a session", e))
}

fn load(path: &Path) -> Result<Pkcs11, Fault> {
    let lib = Pkcs11::new(path).map_err(|e| {
        Fault::new(
            ErrorKind::Module,
            format!(
                "cannot load the PKCS#11 module {}: {e}; check hsm.module",
                path.display()
            ),
        )
    })?;
    match lib.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(lib),
        Err(e) => Err(Fault::from_ck("initialising the PKCS#11 module", e)),
    }
}

/// The slot holding the token labelled (and numbered, when given) as `uri` says; looked
/// up every time, as slots change when tokens come and go.
fn find_slot(lib: &Pkcs11, uri: &KeyUri) -> Result<Slot, Fault> {
    // SoftHSM re-reads its token directory on every listing, and a token whose files are
    // being written by a concurrent operation can be missing from one listing: look again
    // (a few times, briefly) before calling it gone. Sessions are opened rarely.
    let mut tries = 0;
    loop {
        match find_slot_once(lib, uri) {
            Err(e) if e.kind == ErrorKind::TokenGone && tries < 3 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            found => return found,
        }
    }
}

fn find_slot_once(lib: &Pkcs11, uri: &KeyUri) -> Result<Slot, Fault> {
    let slots = lib
        .get_slots_with_token()
        .map_err(|e| Fault::from_ck("listing slots", e))?;
    for slot in slots {
        let Ok(info) = lib.get_token_info(slot) else {
            continue;
        };
        let serial_ok = uri
            .serial
            .as_deref()
            .is_none_or(|s| info.serial_number().trim() == s);
        if info.label().trim() == uri.token && serial_ok {
            return Ok(slot);
        }
    }
    Err(Fault::new(
        ErrorKind::TokenGone,
        format!("no token labelled {:?} is present", uri.token),
    ))
}

fn login(session: &Session, pin: &str) -> Result<(), Fault> {
    let pin = AuthPin::from(pin.to_owned());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => {
            let f = Fault::from_ck("logging in", e);
            match f.kind {
                ErrorKind::PinIncorrect => Err(Fault::new(
                    ErrorKind::PinIncorrect,
                    "the token refused the PIN in the PIN file (hsm.pin_file, --pin-file); fix the file: a refused PIN is never retried",
                )),
                _ => Err(f),
            }
        }
    }
}
