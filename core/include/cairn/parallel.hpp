// The one process-wide pool of worker threads behind every parallel path of the core (BLAKE3
// subtrees and files, aggregations, the GPU path's file reading), so that a call does not pay for
// starting threads and CAIRN_THREADS bounds them all. The calling thread always takes part and
// never waits for a worker to start: a loop completes even when every worker is busy elsewhere
// (or absent, as after fork()).
#pragma once
#include <cstddef>
#include <functional>

namespace cairn {

// Hardware threads of this machine (at least 1), detected once.
unsigned hardware_threads();

// Threads a parallel call may use, the caller's included: CAIRN_THREADS when it is set to a
// positive integer, else hardware_threads(). Read once per process, here and nowhere else; the
// pool has configured_threads() - 1 workers.
unsigned configured_threads();

// `threads` itself when positive, else configured_threads().
unsigned resolve_threads(int threads);

// Runs task(i, worker) for every i in [0, n) on up to `threads` threads (0: configured_threads()),
// the caller's included, and returns when all are done. `worker` is in [0, threads) and names the
// thread for per-thread scratch (the caller is worker 0). When a task throws, the remaining
// indices are skipped and the first exception is rethrown here.
void parallel_for(std::size_t n, unsigned threads,
                  const std::function<void(std::size_t, unsigned)>& task);

// As above, for tasks that need no worker index.
void parallel_for(std::size_t n, unsigned threads, const std::function<void(std::size_t)>& task);

}  // namespace cairn
