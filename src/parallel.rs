//! Parallel regions of the engine: [`for_each_chunk`] over a chunking fixed by the work alone,
//! and [`with_team`], which makes many short regions in a row cheap.
//!
//! A training step of LeNet-5 at batch 64 opens a dozen parallel regions (each layer in each
//! direction, the batch, the optimizer), most of them tens of microseconds of work
//! (evaluation opens one: each thread runs whole batches, see
//! [`crate::nn::Network::forward_each`]). Handed to rayon, a region costs more than its work
//! when serial work came before it, since the idle worker has meanwhile gone to sleep and must
//! be woken. Inside [`with_team`], the pool's other threads are held by a helper job that
//! spins between regions instead, so a region costs the same with or without serial work
//! before it (BENCHMARKS.md has the micro-benchmark). The calling thread, the team's leader, works on the chunks too, taking
//! them from the first while the helpers take them from the last, so that with two threads
//! each sample's activations mostly stay on one processor from layer to layer. A helper
//! that waits long (one-sample steps open no region) goes to sleep instead, and the next
//! region wakes it.
//!
//! Results never depend on which thread runs a chunk, nor on how many threads there are:
//! chunk `c` always covers the same items, and whatever a chunk sums it writes to a place of
//! its own (per-thread scratch, indexed by [`thread_index`], holds nothing between chunks).

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Runs `f(chunk_index, first_item, items)` over the items `0..n` in chunks of `chunk` items,
/// in parallel. The chunking depends only on `n` and `chunk`, never on the thread count.
/// A single chunk runs inline, so batch-size-1 training pays no thread hand-off; so does
/// every chunk of a region opened inside another region's chunk.
pub fn for_each_chunk<F>(n: usize, chunk: usize, f: F)
where
    F: Fn(usize, usize, usize) + Sync + Send,
{
    let chunks = n.div_ceil(chunk);
    let run = |c: usize| {
        let start = c * chunk;
        f(c, start, chunk.min(n - start));
    };
    if chunks <= 1 || IN_REGION.get() {
        (0..chunks).for_each(run);
        return;
    }
    let team = LEADING.get();
    if !team.is_null() {
        // SAFETY: LEADING points at the team of the with_team call running on this thread,
        // which outlives this call.
        return unsafe { &*team }.run(chunks, &run);
    }
    use rayon::prelude::*;
    (0..chunks).into_par_iter().for_each(run);
}

/// Runs `f` with every parallel region inside it run inline, chunk after chunk, on this
/// thread: for a caller that is already one of several threads doing independent work (the
/// `explore` server's requests, one sample each), where handing chunks to the pool would add
/// hand-offs and no speed. The results are the same bits: the chunking never depends on the
/// threads.
pub fn serially<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_REGION.set(self.0);
        }
    }
    let _restore = Restore(IN_REGION.replace(true));
    f()
}

/// Whether the parallel regions this thread opens run inline ([`serially`], or inside a
/// region's chunk), so that no other thread takes part in them.
pub fn inline() -> bool {
    IN_REGION.get()
}

/// The most threads a run uses unless told otherwise: a training batch of 64 splits into 16
/// tasks of 4 images in the convolutions (the largest regions of a step), so further threads
/// would only wait, and an evaluation spreads over at most 16 lanes
/// ([`crate::nn::network::MAX_REPLICAS`]).
pub const DEFAULT_MAX_THREADS: usize = 16;

/// The default thread count of a run: every core, up to [`DEFAULT_MAX_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(DEFAULT_MAX_THREADS)
}

/// The number of threads parallel regions use: the current rayon pool's (a team has as many).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// This thread's index among the [`threads`] threads that run parallel regions, for
/// choosing per-thread scratch: in a team, the leader is 0 and each helper has its own; in a
/// rayon pool, the worker's index.
pub fn thread_index() -> usize {
    TEAM_INDEX
        .get()
        .unwrap_or_else(|| rayon::current_thread_index().unwrap_or(0))
}

/// Whether this thread leads or helps a team: rayon's pool is then held by it, and a
/// rayon broadcast would wait for the helpers forever.
pub fn in_team() -> bool {
    TEAM_INDEX.get().is_some()
}

/// Runs `f` with the current rayon pool's other threads held as a team for the parallel
/// regions `f` opens on this thread ([`for_each_chunk`]); they spin between regions, so `f`
/// should be a stretch of many short regions (an epoch, an evaluation), and must not itself
/// call into rayon (a broadcast would wait for the helpers forever). With one thread, or
/// inside another team, `f` just runs.
pub fn with_team<R>(f: impl FnOnce() -> R) -> R {
    let threads = threads();
    if threads <= 1 || in_team() {
        return f();
    }
    let team = Team::new();
    rayon::in_place_scope(|scope| {
        for index in 1..threads {
            let team = &team;
            scope.spawn(move |_| team.help(index));
        }
        // Undone however f ends, so the helpers stop and the scope can finish.
        struct Lead<'a>(&'a Team);
        impl Drop for Lead<'_> {
            fn drop(&mut self) {
                LEADING.set(std::ptr::null());
                TEAM_INDEX.set(None);
                self.0.stop.store(true, Ordering::SeqCst);
                self.0.wake_sleepers();
            }
        }
        let _lead = Lead(&team);
        LEADING.set(&team);
        TEAM_INDEX.set(Some(0));
        f()
    })
}

thread_local! {
    /// The team this thread leads, while [`with_team`] runs on it.
    static LEADING: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
    /// Whether this thread is running a region's chunk.
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
    /// This thread's index in the team it leads or helps.
    static TEAM_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A region's work: chunk index to nothing. Its lifetime is erased while it is published;
/// [`Team::run`] does not return before every helper has left the region.
type Job = *const (dyn Fn(usize) + Sync + 'static);

/// Set in [`Team::inside`] once the leader has finished its share of the region.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// What a leader and its helpers share.
struct Team {
    /// Bumped when a region opens; helpers wait for it to change.
    generation: AtomicUsize,
    /// The threads inside the open region, plus [`CLOSED`]: helpers join only while it is
    /// clear, and the leader waits for the count to reach zero after setting it.
    inside: AtomicUsize,
    /// The open region's unclaimed chunks `lo .. hi`, packed as `lo << 32 | hi`: the leader
    /// claims them from the bottom, helpers from the top (see [`Team::work`]).
    unclaimed: AtomicU64,
    /// The open region's work; written only while the region is closed and empty.
    job: UnsafeCell<Option<Job>>,
    /// The first panic of a helper's chunk, resumed on the leader.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Tells the helpers to return.
    stop: AtomicBool,
    /// Helpers that went to sleep after a long wait (one-sample steps open no region), and
    /// where they sleep.
    sleeping: AtomicUsize,
    bed: Mutex<()>,
    alarm: Condvar,
    /// The leader's thread: a helper job that rayon runs there (while the leader waits in
    /// rayon) returns at once instead of spinning for regions that thread would open.
    leader: std::thread::ThreadId,
}

// SAFETY: `job` is written by the leader only while no helper is inside a region (`inside`
// is CLOSED with no thread counted), and read by helpers only after joining an open region,
// whose opening store (Release) their join (Acquire) synchronises with.
unsafe impl Sync for Team {}

/// Where a thread takes the chunks of a region from.
#[derive(Clone, Copy)]
enum Side {
    Bottom,
    Top,
}

/// Pauses a helper makes between looks at the generation before it starts yielding its
/// processor between looks instead (tens of microseconds, depending on the processor).
const SPINS: u32 = 1 << 11;

/// Further looks, each after yielding the processor, before a helper goes to sleep until the
/// next region (hundreds of microseconds: a region then costs the leader a wake-up call).
const YIELDS: u32 = 1 << 9;

impl Team {
    fn new() -> Self {
        Team {
            generation: AtomicUsize::new(0),
            inside: AtomicUsize::new(CLOSED),
            unclaimed: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            panic: Mutex::new(None),
            stop: AtomicBool::new(false),
            sleeping: AtomicUsize::new(0),
            bed: Mutex::new(()),
            alarm: Condvar::new(),
            leader: std::thread::current().id(),
        }
    }

    /// Runs `job(c)` for every chunk `c < chunks`, on the leader and whichever helpers join.
    fn run(&self, chunks: usize, job: &(dyn Fn(usize) + Sync)) {
        // SAFETY: the pointer is published only until this function returns, and it returns
        // (or unwinds, through `Close`) only after every helper has left the region.
        let job: Job = unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync + '_)) };
        // SAFETY: the region is closed and empty (the last run waited for it), so no helper
        // reads `job`.
        unsafe { *self.job.get() = Some(job) };
        let chunks = u32::try_from(chunks).expect("fewer than 2^32 chunks");
        self.unclaimed.store(u64::from(chunks), Ordering::Relaxed);
        self.inside.store(1, Ordering::Release);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.wake_sleepers();

        /// Closes the region and waits for the helpers inside, also when a chunk panics.
        struct Close<'a>(&'a Team);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                IN_REGION.set(false);
                let inside = &self.0.inside;
                inside.fetch_or(CLOSED, Ordering::AcqRel);
                inside.fetch_sub(1, Ordering::AcqRel);
                while inside.load(Ordering::Acquire) != CLOSED {
                    std::hint::spin_loop();
                }
            }
        }
        let close = Close(self);
        IN_REGION.set(true);
        self.work(Side::Bottom);
        drop(close);
        if let Some(payload) = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resume_unwind(payload);
        }
    }

    /// Claims and runs the open region's chunks until none is left, from the bottom of the
    /// unclaimed ones (the leader) or from the top (helpers). Chunks follow the batch's
    /// samples in order in every layer, so with two threads the leader works on the first
    /// samples of each region and the helper on the last, region after region: a sample's
    /// activations are mostly read back on the processor that wrote them, not fetched from
    /// the other one's cache. Who runs a chunk never changes what it computes.
    fn work(&self, side: Side) {
        // SAFETY: called inside an open region, whose job stays valid until it is empty.
        let job = unsafe { &*(*self.job.get()).expect("an open region has a job") };
        let mut now = self.unclaimed.load(Ordering::Relaxed);
        loop {
            let (lo, hi) = (now >> 32, now & u64::from(u32::MAX));
            if lo >= hi {
                return;
            }
            let (chunk, rest) = match side {
                Side::Bottom => (lo, (lo + 1) << 32 | hi),
                Side::Top => (hi - 1, lo << 32 | (hi - 1)),
            };
            match self.unclaimed.compare_exchange_weak(
                now,
                rest,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    job(chunk as usize);
                    now = self.unclaimed.load(Ordering::Relaxed);
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Wakes the helpers that sleep. Called after bumping the generation or setting stop
    /// (SeqCst), which a helper about to sleep checks after counting itself (SeqCst): either
    /// it sees the change, or this sees it counted and waits for it to be in bed.
    fn wake_sleepers(&self) {
        if self.sleeping.load(Ordering::SeqCst) > 0 {
            let _bed = self.bed.lock().unwrap_or_else(|e| e.into_inner());
            self.alarm.notify_all();
        }
    }

    /// Sleeps until the generation moves from `seen` or the team stops.
    fn sleep(&self, seen: usize) {
        let mut bed = self.bed.lock().unwrap_or_else(|e| e.into_inner());
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == seen && !self.stop.load(Ordering::SeqCst) {
            bed = self.alarm.wait(bed).unwrap_or_else(|e| e.into_inner());
        }
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
    }

    /// Enters the open region, unless it is closed.
    fn join(&self) -> bool {
        let mut inside = self.inside.load(Ordering::Acquire);
        while inside & CLOSED == 0 {
            match self.inside.compare_exchange_weak(
                inside,
                inside + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => inside = now,
            }
        }
        false
    }

    /// A helper's life: wait for a region, join it, work, leave; until told to stop.
    fn help(&self, index: usize) {
        if std::thread::current().id() == self.leader {
            return;
        }
        TEAM_INDEX.set(Some(index));
        let mut seen = 0;
        loop {
            let mut looks = 0u32;
            loop {
                if self.stop.load(Ordering::Acquire) {
                    TEAM_INDEX.set(None);
                    return;
                }
                let generation = self.generation.load(Ordering::Acquire);
                if generation != seen {
                    seen = generation;
                    break;
                }
                looks += 1;
                if looks < SPINS {
                    std::hint::spin_loop();
                } else if looks < SPINS + YIELDS {
                    std::thread::yield_now();
                } else {
                    self.sleep(seen);
                    looks = 0;
                }
            }
            if !self.join() {
                continue;
            }
            IN_REGION.set(true);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.work(Side::Top)));
            IN_REGION.set(false);
            if let Err(payload) = outcome {
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(payload);
            }
            self.inside.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Pointer wrapper that lets parallel chunks write to disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T, usize);

// SAFETY: only used by `for_each_chunk` closures that write disjoint ranges.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(slice: &mut [T]) -> Self {
        SharedMut(slice.as_mut_ptr(), slice.len())
    }

    /// The range `start..start + len` of the buffer.
    ///
    /// # Safety
    /// Concurrent callers must ask for disjoint ranges, and the buffer must outlive the use.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.1, "chunk out of bounds");
        // SAFETY: in bounds (checked above); disjointness is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
    }

    /// Many regions in a row inside a team, of 2 to 40 chunks, some nested: every chunk runs
    /// once, with its own items, and the per-thread indices in use at once differ.
    #[test]
    fn a_team_runs_every_chunk_once() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                with_team(|| {
                    for round in 0..2000 {
                        let n = 2 + round % 39;
                        let counts: Vec<AtomicUsize> =
                            (0..n).map(|_| AtomicUsize::new(0)).collect();
                        let busy: Vec<AtomicBool> =
                            (0..threads).map(|_| AtomicBool::new(false)).collect();
                        for_each_chunk(n, 3, |c, first, items| {
                            let me = thread_index();
                            assert!(!busy[me].swap(true, Ordering::AcqRel), "index {me} shared");
                            assert_eq!((first, items), (3 * c, 3.min(n - 3 * c)));
                            for count in &counts[first..first + items] {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            if round % 10 == 0 && n > 3 {
                                // A region inside a region's chunk runs inline, on this
                                // thread (a region of one chunk is no region).
                                for_each_chunk(4, 1, |_, _, _| assert_eq!(thread_index(), me));
                            }
                            busy[me].store(false, Ordering::Release);
                        });
                        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "{n}");
                    }
                })
            });
        }
    }

    /// With two threads, the leader runs the first chunks of a region and the helper the
    /// last ones: the chunks each ran are a prefix and a suffix, whoever was quicker.
    #[test]
    fn the_leader_takes_chunks_from_the_bottom_and_the_helper_from_the_top() {
        pool(2).install(|| {
            with_team(|| {
                let mut helped = 0;
                for round in 0..500 {
                    let n = 2 + round % 31;
                    let ran: Vec<AtomicUsize> =
                        (0..n).map(|_| AtomicUsize::new(usize::MAX)).collect();
                    for_each_chunk(n, 1, |c, _, _| {
                        // Some work, so that the helper joins most regions.
                        let mut a = 1.0f64;
                        for i in 0..5000 {
                            a = a * 1.000001 + i as f64;
                        }
                        std::hint::black_box(a);
                        ran[c].store(thread_index(), Ordering::Relaxed);
                    });
                    let who: Vec<usize> = ran.iter().map(|r| r.load(Ordering::Relaxed)).collect();
                    let leader = who.iter().take_while(|&&t| t == 0).count();
                    assert!(who[leader..].iter().all(|&t| t == 1), "{who:?}");
                    helped += usize::from(leader < n);
                }
                assert!(helped > 0, "the helper never took a chunk");
            })
        });
    }

    /// Regions far apart: the helper goes to sleep between them, wakes for the next one
    /// (it takes chunks again) and for the team's end (else the scope would never finish).
    #[test]
    fn a_sleeping_helper_wakes_up() {
        pool(2).install(|| {
            with_team(|| {
                let mut helped = 0;
                for _ in 0..20 {
                    std::thread::sleep(std::time::Duration::from_millis(3));
                    let done: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
                    let by_helper = AtomicUsize::new(0);
                    for_each_chunk(16, 1, |c, _, _| {
                        std::thread::sleep(std::time::Duration::from_micros(500));
                        by_helper.fetch_add(usize::from(thread_index() == 1), Ordering::Relaxed);
                        done[c].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(done.iter().all(|d| d.load(Ordering::Relaxed) == 1));
                    helped += usize::from(by_helper.into_inner() > 0);
                }
                // Woken within the 8 ms a region takes the leader alone, most times.
                assert!(
                    helped >= 10,
                    "the helper took chunks in {helped} of 20 regions"
                );
            })
        });
    }

    /// A chunk's panic reaches the caller, whichever thread ran it, and the pool is still
    /// usable after it.
    #[test]
    fn a_panic_in_a_chunk_reaches_the_leader() {
        let pool = pool(2);
        for round in 0..20 {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                pool.install(|| {
                    with_team(|| {
                        for_each_chunk(64, 1, |c, _, _| {
                            std::thread::sleep(std::time::Duration::from_micros(50));
                            if c == 7 + round {
                                panic!("chunk {c} failed");
                            }
                        });
                    })
                })
            }));
            let payload = caught.expect_err("the panic comes back");
            let message = payload.downcast_ref::<String>().expect("a message");
            assert_eq!(message, &format!("chunk {} failed", 7 + round));
        }
        let sum = AtomicUsize::new(0);
        pool.install(|| {
            with_team(|| {
                for_each_chunk(10, 1, |c, _, _| {
                    sum.fetch_add(c, Ordering::Relaxed);
                })
            })
        });
        assert_eq!(sum.into_inner(), 45);
    }
}
