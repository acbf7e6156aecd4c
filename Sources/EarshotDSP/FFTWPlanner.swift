internal import CFFTW
import Synchronization

/// FFTW's planner (and `fftwf_destroy_plan`) is not thread safe; plan execution on a plan's own
/// buffers is. Every plan creation and destruction in this module goes through this lock,
/// which is only taken in `init`/`deinit`, never in `process`.
let fftwPlannerLock = Mutex<Void>(())
