! vine.f90: the Fortran 2003 module `vine`, over the C API in vine.h.
!
! Every C function keeps its C name. Handles (manager, task, file, output buffer)
! are type(c_ptr); sizes are integer(c_size_t); string arguments are character(*)
! (the module drops trailing blanks, as Fortran comparisons ignore them, so a
! fixed-length variable passes what it holds, and adds the terminating NUL; a
! string with a NUL byte inside, c_null_char, ends there for the library, as it
! would in C: do not build commands, paths or tags from bytes that may hold one) and
! strings the library returns come back as
! allocatable character ('' where C returns NULL). Where C takes NULL for a string
! (an unset environment variable, any tag, no name, every category), leave the
! optional argument out, by keyword after it: vine_wait_for_tag(m, timeout_s=5).
! Every constant of vine.h is a
! named parameter here. Compile this file with your program; no .mod file is shipped.
!
! A task function is a bind(C) function, registered with c_funloc:
!
!   recursive integer(c_int) function square(input, input_len, output, context) bind(C)
!     type(c_ptr), value :: input, output, context
!     integer(c_size_t), value :: input_len
!     real(c_double), pointer :: x
!     real(c_double), target :: y            ! a local: appending copies it
!     square = -1                            ! a failure, unless ...
!     if (c_associated(context) .or. input_len /= c_sizeof(y)) return
!     call c_f_pointer(input, x)             ! read the input
!     y = x * x
!     square = vine_buffer_append(output, c_loc(y), int(c_sizeof(y), c_size_t))
!   end function
!   ...
!   rc = vine_register_function('square', c_funloc(square))
!
! Task functions run on several threads at once. Declare them RECURSIVE (or
! compile with -frecursive), so that their locals, large arrays too, are each
! call's own, and keep no SAVE variable or module variable they write: those are
! shared by every call running (gfortran's -fcheck=all stops the program on a
! second call of a function not RECURSIVE). A STOP or ERROR STOP in a task
! function ends the whole program, as exit() does in C: run such code with
! vine_task_set_exec_mode(t, VINE_EXEC_PROCESS), where it ends only the task
! (VINE_RESULT_FUNCTION_ERROR with the stop code). Such a task runs in a copy of
! the program made by fork(): what a unit holds unwritten at the submission is
! written again by a STOP there, so flush(output_unit) (and any unit written to)
! before submitting; and what the function PRINTs is lost at its return unless
! it flushes the unit itself, where the unit is a file or a pipe.
!
! Arrays as task inputs: the input is copied at creation, so pass any contiguous
! array with the TARGET attribute and its size in bytes:
!
!   real(c_double), target :: xs(100)
!   t = vine_task_create_function('sum', c_loc(xs), int(c_sizeof(xs), c_size_t))
!
! (c_sizeof takes an array of explicit size only; for an allocatable one pass
! size(ys) * c_sizeof(ys(1)).)
!
! Reading an output back into a Fortran array:
!
!   type(c_ptr) :: p
!   integer(c_size_t) :: n
!   real(c_double), pointer :: ys(:)
!   p = vine_task_get_output(t, n)
!   call c_f_pointer(p, ys, [n / c_sizeof(0.0_c_double)])  ! valid until vine_task_delete(t)
!
! Inside a task function, the input array is read the same way:
!   call c_f_pointer(input, xs, [input_len / c_sizeof(0.0_c_double)])
module vine
  use, intrinsic :: iso_c_binding
  implicit none
  private
  public :: c_ptr, c_null_ptr, c_funptr, c_int, c_int64_t, c_size_t, c_double

  ! Constants of vine.h.
  integer(c_int), parameter, public :: VINE_VERSION_MAJOR = 0
  integer(c_int), parameter, public :: VINE_VERSION_MINOR = 1
  integer(c_int), parameter, public :: VINE_VERSION_PATCH = 0
  integer(c_int), parameter, public :: VINE_DEFAULT_PORT = 9123
  integer(c_int), parameter, public :: VINE_RANDOM_PORT = 0
  integer(c_int), parameter, public :: VINE_PORT_NONE = -1
  integer(c_int), parameter, public :: VINE_WAIT_FOREVER = -1
  integer(c_int), parameter, public :: VINE_RESULT_SUCCESS = 0
  integer(c_int), parameter, public :: VINE_RESULT_INPUT_MISSING = 1
  integer(c_int), parameter, public :: VINE_RESULT_OUTPUT_MISSING = 2
  integer(c_int), parameter, public :: VINE_RESULT_STDOUT_MISSING = 4
  integer(c_int), parameter, public :: VINE_RESULT_SIGNAL = 8
  integer(c_int), parameter, public :: VINE_RESULT_RESOURCE_EXHAUSTION = 16
  integer(c_int), parameter, public :: VINE_RESULT_MAX_END_TIME = 24
  integer(c_int), parameter, public :: VINE_RESULT_UNKNOWN = 32
  integer(c_int), parameter, public :: VINE_RESULT_FORSAKEN = 40
  integer(c_int), parameter, public :: VINE_RESULT_MAX_RETRIES = 48
  integer(c_int), parameter, public :: VINE_RESULT_MAX_WALL_TIME = 56
  integer(c_int), parameter, public :: VINE_RESULT_RMONITOR_ERROR = 64
  integer(c_int), parameter, public :: VINE_RESULT_OUTPUT_TRANSFER_ERROR = 72
  integer(c_int), parameter, public :: VINE_RESULT_FIXED_LOCATION_MISSING = 80
  integer(c_int), parameter, public :: VINE_RESULT_CANCELLED = 88
  integer(c_int), parameter, public :: VINE_RESULT_LIBRARY_EXIT = 96
  integer(c_int), parameter, public :: VINE_RESULT_SANDBOX_EXHAUSTION = 104
  integer(c_int), parameter, public :: VINE_RESULT_MISSING_LIBRARY = 112
  integer(c_int), parameter, public :: VINE_RESULT_FUNCTION_ERROR = 1024
  integer(c_int), parameter, public :: VINE_RESULT_MISSING_FUNCTION = 1032
  integer(c_int), parameter, public :: VINE_RESULT_UNSCHEDULABLE = 1040
  integer(c_int), parameter, public :: VINE_OK = 0
  integer(c_int), parameter, public :: VINE_ERROR_NULL = -1
  integer(c_int), parameter, public :: VINE_ERROR_INVALID_ARGUMENT = -2
  integer(c_int), parameter, public :: VINE_ERROR_INVALID_HANDLE = -3
  integer(c_int), parameter, public :: VINE_ERROR_UNKNOWN_TASK = -4
  integer(c_int), parameter, public :: VINE_ERROR_SHUT_DOWN = -5
  integer(c_int), parameter, public :: VINE_ERROR_TASK_SUBMITTED = -6
  integer(c_int), parameter, public :: VINE_ERROR_UNKNOWN_SETTING = -7
  integer(c_int), parameter, public :: VINE_ERROR_DUPLICATE_FUNCTION = -8
  integer(c_int), parameter, public :: VINE_ERROR_IO = -9
  integer(c_int), parameter, public :: VINE_ERROR_UNSUPPORTED = -10
  integer(c_int), parameter, public :: VINE_ERROR_TIMEOUT = -11
  integer(c_int), parameter, public :: VINE_ERROR_INTERNAL = -12
  integer(c_int), parameter, public :: VINE_CACHE_LEVEL_TASK = 0
  integer(c_int), parameter, public :: VINE_CACHE_LEVEL_WORKFLOW = 1
  integer(c_int), parameter, public :: VINE_CACHE_LEVEL_WORKER = 2
  integer(c_int), parameter, public :: VINE_CACHE_LEVEL_FOREVER = 3
  integer(c_int), parameter, public :: VINE_PEER_NOSHARE = 1
  integer(c_int), parameter, public :: VINE_UNLINK_WHEN_DONE = 2
  integer(c_int), parameter, public :: VINE_TRANSFER_ALWAYS = 0
  integer(c_int), parameter, public :: VINE_FIXED_LOCATION = 1
  integer(c_int), parameter, public :: VINE_WATCH = 2
  integer(c_int), parameter, public :: VINE_FAILURE_ONLY = 4
  integer(c_int), parameter, public :: VINE_SUCCESS_ONLY = 8
  integer(c_int), parameter, public :: VINE_MOUNT_SYMLINK = 32
  integer(c_int), parameter, public :: VINE_MOUNT_MKDIR = 64
  integer(c_int), parameter, public :: VINE_MOUNT_RESEND = 256
  integer(c_int), parameter, public :: VINE_FILE = 1
  integer(c_int), parameter, public :: VINE_URL = 2
  integer(c_int), parameter, public :: VINE_TEMP = 3
  integer(c_int), parameter, public :: VINE_BUFFER = 4
  integer(c_int), parameter, public :: VINE_MINI_TASK = 5
  integer(c_int), parameter, public :: VINE_EXEC_THREAD = 0
  integer(c_int), parameter, public :: VINE_EXEC_PROCESS = 1
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_FIXED = 0
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_MAX = 1
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_MIN_WASTE = 2
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_MAX_THROUGHPUT = 3
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_GREEDY_BUCKETING = 4
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING = 5
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_DET_GREEDY_BUCKETING = 6
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING = 7
  integer(c_int), parameter, public :: VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING = 8

  !> TaskVine's struct vine_resources (vine_task_get_resources, the category
  !> bounds): -1 is "not set"; strings and pointers are c_null_ptr in vine.
  type, bind(C), public :: vine_resources
    type(c_ptr) :: category, command, taskid
    real(c_double) :: cores
    real(c_double) :: gpus
    real(c_double) :: memory
    real(c_double) :: disk
    type(c_ptr) :: exit_type
    integer(c_int64_t) :: signal, exit_status, last_error
    real(c_double) :: start
    real(c_double) :: end
    real(c_double) :: cores_avg
    real(c_double) :: wall_time
    real(c_double) :: cpu_time
    real(c_double) :: virtual_memory
    real(c_double) :: swap_memory
    real(c_double) :: bytes_read
    real(c_double) :: bytes_written
    real(c_double) :: bytes_received
    real(c_double) :: bytes_sent
    real(c_double) :: bandwidth
    real(c_double) :: machine_cpus
    real(c_double) :: machine_load
    real(c_double) :: context_switches
    real(c_double) :: max_concurrent_processes
    real(c_double) :: total_processes
    real(c_double) :: total_files
    real(c_double) :: fs_nodes
    real(c_double) :: workers
    type(c_ptr) :: limits_exceeded, peak_times, snapshot_name
    integer(c_size_t) :: snapshots_count
    type(c_ptr) :: snapshots
  end type vine_resources

  !> Counters of a manager (struct vine_stats): TaskVine's fields in TaskVine's
  !> order, then vine's own (tasks_retried, total_cores_exact, committed_cores_exact,
  !> bytes_peer: bytes moved between workers).
  type, bind(C), public :: vine_stats
    integer(c_int) :: workers_connected, workers_init, workers_idle, workers_busy, workers_able
    integer(c_int) :: workers_joined, workers_removed, workers_released, workers_idled_out
    integer(c_int) :: workers_slow, workers_blocked, workers_lost
    integer(c_int) :: tasks_waiting, tasks_on_workers, tasks_running, tasks_with_results
    integer(c_int) :: tasks_recovery
    integer(c_int) :: tasks_submitted, tasks_dispatched, tasks_done, tasks_failed
    integer(c_int) :: tasks_successful, tasks_cancelled, tasks_exhausted_attempts
    integer(c_int64_t) :: time_when_started, time_send, time_receive, time_send_good
    integer(c_int64_t) :: time_receive_good, time_status_msgs, time_internal, time_polling
    integer(c_int64_t) :: time_application, time_scheduling
    integer(c_int64_t) :: time_workers_execute, time_workers_execute_good
    integer(c_int64_t) :: time_workers_execute_exhaustion
    integer(c_int64_t) :: bytes_sent, bytes_received
    real(c_double) :: bandwidth
    integer(c_int) :: capacity_tasks, capacity_cores, capacity_memory, capacity_disk
    integer(c_int) :: capacity_gpus, capacity_instantaneous, capacity_weighted
    integer(c_int64_t) :: total_cores, total_memory, total_disk, total_gpus
    integer(c_int64_t) :: committed_cores, committed_memory, committed_disk, committed_gpus
    integer(c_int64_t) :: max_cores, max_memory, max_disk, max_gpus
    integer(c_int64_t) :: min_cores, min_memory, min_disk, min_gpus
    integer(c_int64_t) :: inuse_cache
    integer(c_int64_t) :: tasks_retried
    real(c_double) :: total_cores_exact, committed_cores_exact
    integer(c_int64_t) :: bytes_peer
  end type vine_stats

  ! Functions without string arguments: the C functions themselves.
  public :: vine_create, vine_port, vine_submit, vine_wait, vine_wait_for_task_id
  public :: vine_empty, vine_hungry, vine_cancel_by_task_id, vine_cancel_all, vine_get_stats
  public :: vine_shutdown, vine_delete, vine_task_create_local, vine_task_delete
  public :: vine_task_set_cores, vine_task_set_memory, vine_task_set_disk, vine_task_set_gpus
  public :: vine_task_set_priority, vine_task_set_time_min, vine_task_set_time_max
  public :: vine_task_set_retries, vine_task_set_exec_mode, vine_task_get_result
  public :: vine_task_get_exit_code, vine_task_get_output, vine_task_get_id
  public :: vine_declare_buffer, vine_declare_temp, vine_fetch_file, vine_fetch_file_len, vine_file_size
  public :: vine_file_set_mode, vine_file_replica_count
  public :: vine_declare_untar, vine_declare_poncho, vine_task_add_poncho_package
  public :: vine_file_contents, vine_file_type, vine_file_source, vine_prune_file
  public :: vine_undeclare_file
  public :: vine_buffer_append, vine_task_gpu_ids, vine_worker_main
  ! Functions with strings: Fortran wrappers of the same names.
  public :: vine_tune, vine_set_password_file, vine_set_runtime_info_path_for, vine_set_name
  ! Managing workers and settings, as TaskVine names them.
  public :: vine_set_task_id_min, vine_unblock_all, vine_workers_shutdown
  public :: vine_set_tasks_left_count, vine_enable_disconnect_slow_workers_category
  public :: vine_set_bandwidth_limit, vine_get_effective_bandwidth, vine_summarize_workers
  public :: vine_enable_taskgraph_log
  public :: vine_enable_disconnect_slow_workers, vine_set_keepalive_interval
  public :: vine_set_keepalive_timeout, vine_enable_peer_transfers, vine_disable_peer_transfers
  public :: vine_enable_monitoring, vine_set_runtime_info_path, vine_get_name
  public :: vine_version_string, vine_block_host, vine_block_host_with_timeout
  public :: vine_unblock_host, vine_set_draining_by_hostname, vine_set_category_mode
  public :: vine_enable_category_resource
  public :: vine_wait_for_tag, vine_last_error, vine_version, vine_result_string
  public :: vine_last_error_code
  public :: vine_task_create_function, vine_task_create, vine_task_set_category
  public :: vine_task_set_tag, vine_task_set_env_var, vine_task_get_stdout, vine_task_get_tag
  public :: vine_task_get_category, vine_task_get_command, vine_task_get_reason
  public :: vine_task_set_time_start, vine_task_set_time_end, vine_task_set_max_forsaken
  public :: vine_task_set_command, vine_task_add_feature, vine_task_get_hostname
  public :: vine_task_get_addrport, vine_task_get_state, vine_cancel_by_task_tag
  public :: vine_cancel_all_by_tag
  public :: vine_task_get_metric, vine_declare_file, vine_task_add_input, vine_task_add_output
  public :: vine_register_function, vine_fetch_file_string
  ! Measured resources and sizing.
  public :: vine_resources_create, vine_resources_delete, vine_task_get_resources
  public :: vine_set_category_resources_max, vine_set_category_resources_min
  public :: vine_set_category_first_allocation_guess, vine_set_resources_max
  public :: vine_set_resources_min, vine_set_category_max_concurrent, vine_get_stats_category
  public :: vine_task_set_resources, vine_resources_set, vine_resources_get
  public :: vine_task_set_monitor_output, vine_initialize_categories
  public :: vine_enable_proportional_resources, vine_disable_proportional_resources
  ! Logs and the run directory.
  public :: vine_enable_transactions_log, vine_enable_perf_log, vine_enable_debug_log
  public :: vine_log_txn_app, vine_log_debug_app, vine_set_runtime_info_template
  public :: vine_get_runtime_directory, vine_get_path_log
  public :: vine_get_path_staging, vine_get_path_library_log, vine_get_path_cache
  public :: vine_declare_url, vine_declare_mini_task
  public :: vine_ssl_create, vine_ssl_create_self_signed, vine_ssl_fingerprint
  public :: vine_set_password
  public :: vine_factory_create, vine_factory_set, vine_factory_set_string, vine_factory_delete

  interface
    type(c_ptr) function vine_create(port) bind(C, name='vine_create')
      import :: c_ptr, c_int
      integer(c_int), value :: port
    end function
    integer(c_int) function vine_last_error_code() bind(C, name='vine_last_error_code')
      import :: c_int
    end function
    integer(c_int) function vine_port(m) bind(C, name='vine_port')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_submit(m, t) bind(C, name='vine_submit')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, t
    end function
    type(c_ptr) function vine_wait(m, timeout_s) bind(C, name='vine_wait')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: timeout_s
    end function
    type(c_ptr) function vine_wait_for_task_id(m, id, timeout_s) bind(C, name='vine_wait_for_task_id')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: id, timeout_s
    end function
    integer(c_int) function vine_empty(m) bind(C, name='vine_empty')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_hungry(m) bind(C, name='vine_hungry')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_cancel_by_task_id(m, id) bind(C, name='vine_cancel_by_task_id')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: id
    end function
    integer(c_int) function vine_cancel_all(m) bind(C, name='vine_cancel_all')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_get_stats(m, s) bind(C, name='vine_get_stats')
      import :: c_ptr, c_int, vine_stats
      type(c_ptr), value :: m
      type(vine_stats), intent(out) :: s
    end function
    integer(c_int) function vine_shutdown(m) bind(C, name='vine_shutdown')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    subroutine vine_delete(m) bind(C, name='vine_delete')
      import :: c_ptr
      type(c_ptr), value :: m
    end subroutine
    type(c_ptr) function vine_task_create_local(fn, context, input, input_len) bind(C, name='vine_task_create_local')
      import :: c_ptr, c_funptr, c_size_t
      type(c_funptr), value :: fn
      type(c_ptr), value :: context, input
      integer(c_size_t), value :: input_len
    end function
    integer(c_int) function vine_task_delete_c(t) bind(C, name='vine_task_delete')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
    end function
    integer(c_int) function vine_task_set_cores(t, cores) bind(C, name='vine_task_set_cores')
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: t
      real(c_double), value :: cores
    end function
    integer(c_int) function vine_task_set_memory(t, mb) bind(C, name='vine_task_set_memory')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: mb
    end function
    integer(c_int) function vine_task_set_disk(t, mb) bind(C, name='vine_task_set_disk')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: mb
    end function
    integer(c_int) function vine_task_set_gpus(t, gpus) bind(C, name='vine_task_set_gpus')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
      integer(c_int), value :: gpus
    end function
    integer(c_int) function vine_task_set_priority(t, priority) bind(C, name='vine_task_set_priority')
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: t
      real(c_double), value :: priority
    end function
    integer(c_int) function vine_task_set_time_min(t, seconds) bind(C, name='vine_task_set_time_min')
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: t
      real(c_double), value :: seconds
    end function
    integer(c_int) function vine_task_set_time_max(t, seconds) bind(C, name='vine_task_set_time_max')
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: t
      real(c_double), value :: seconds
    end function
    integer(c_int) function vine_task_set_retries(t, retries) bind(C, name='vine_task_set_retries')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: retries
    end function
    integer(c_int) function vine_task_set_time_start(t, useconds) bind(C, name='vine_task_set_time_start')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: useconds
    end function
    integer(c_int) function vine_task_set_time_end(t, useconds) bind(C, name='vine_task_set_time_end')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: useconds
    end function
    integer(c_int) function vine_task_set_max_forsaken(t, n) bind(C, name='vine_task_set_max_forsaken')
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: n
    end function
    integer(c_int) function vine_task_set_exec_mode(t, mode) bind(C, name='vine_task_set_exec_mode')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
      integer(c_int), value :: mode
    end function
    integer(c_int) function vine_task_get_result(t) bind(C, name='vine_task_get_result')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
    end function
    integer(c_int) function vine_task_get_exit_code(t) bind(C, name='vine_task_get_exit_code')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
    end function
    type(c_ptr) function vine_task_get_output(t, len) bind(C, name='vine_task_get_output')
      import :: c_ptr, c_size_t
      type(c_ptr), value :: t
      integer(c_size_t), intent(out) :: len
    end function
    integer(c_int) function vine_task_get_id(t) bind(C, name='vine_task_get_id')
      import :: c_ptr, c_int
      type(c_ptr), value :: t
    end function
    type(c_ptr) function vine_declare_buffer(m, data, len, cache, flags) bind(C, name='vine_declare_buffer')
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: m, data
      integer(c_size_t), value :: len
      integer(c_int), value :: cache, flags
    end function
    type(c_ptr) function vine_declare_temp(m) bind(C, name='vine_declare_temp')
      import :: c_ptr
      type(c_ptr), value :: m
    end function
    type(c_ptr) function vine_fetch_file(m, f) bind(C, name='vine_fetch_file')
      import :: c_ptr
      type(c_ptr), value :: m, f
    end function
    type(c_ptr) function vine_fetch_file_len(m, f, len) bind(C, name='vine_fetch_file_len')
      import :: c_ptr, c_size_t
      type(c_ptr), value :: m, f
      integer(c_size_t), intent(out) :: len
    end function
    integer(c_size_t) function vine_file_size(f) bind(C, name='vine_file_size')
      import :: c_ptr, c_size_t
      type(c_ptr), value :: f
    end function
    integer(c_int) function vine_file_replica_count(m, f) bind(C, name='vine_file_replica_count')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, f
    end function
    integer(c_int) function vine_file_set_mode(f, mode) bind(C, name='vine_file_set_mode')
      import :: c_ptr, c_int
      type(c_ptr), value :: f
      integer(c_int), value :: mode
    end function
    type(c_ptr) function vine_declare_untar(m, f, cache, flags) bind(C, name='vine_declare_untar')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, f
      integer(c_int), value :: cache, flags
    end function
    type(c_ptr) function vine_declare_poncho(m, f, cache, flags) bind(C, name='vine_declare_poncho')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, f
      integer(c_int), value :: cache, flags
    end function
    integer(c_int) function vine_task_add_poncho_package(t, f) bind(C, name='vine_task_add_poncho_package')
      import :: c_ptr, c_int
      type(c_ptr), value :: t, f
    end function
    type(c_ptr) function vine_file_contents(f) bind(C, name='vine_file_contents')
      import :: c_ptr
      type(c_ptr), value :: f
    end function
    integer(c_int) function vine_file_type(f) bind(C, name='vine_file_type')
      import :: c_ptr, c_int
      type(c_ptr), value :: f
    end function
    type(c_ptr) function c_vine_file_source(f) bind(C, name='vine_file_source')
      import :: c_ptr
      type(c_ptr), value :: f
    end function
    integer(c_int) function vine_prune_file(m, f) bind(C, name='vine_prune_file')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, f
    end function
    subroutine vine_undeclare_file(m, f) bind(C, name='vine_undeclare_file')
      import :: c_ptr
      type(c_ptr), value :: m, f
    end subroutine
    integer(c_int) function vine_buffer_append(out, data, len) bind(C, name='vine_buffer_append')
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: out, data
      integer(c_size_t), value :: len
    end function
    integer(c_int) function vine_task_gpu_ids(ids, max) bind(C, name='vine_task_gpu_ids')
      import :: c_int
      integer(c_int), intent(out) :: ids(*)
      integer(c_int), value :: max
    end function
    !> argv: a C array of argc NUL-terminated strings (see vine.h).
    integer(c_int) function vine_worker_main(argc, argv) bind(C, name='vine_worker_main')
      import :: c_ptr, c_int
      integer(c_int), value :: argc
      type(c_ptr), value :: argv
    end function

    subroutine vine_factory_delete(f) bind(C, name='vine_factory_delete')
      import :: c_ptr
      type(c_ptr), value :: f
    end subroutine

    ! The C functions behind the string wrappers below.
    type(c_ptr) function c_vine_factory_create(m, batch_type) bind(C, name='vine_factory_create')
      import :: c_ptr, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: batch_type(*)
    end function
    integer(c_int) function c_vine_factory_set(f, name, value) bind(C, name='vine_factory_set')
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: f
      character(kind=c_char), intent(in) :: name(*)
      real(c_double), value :: value
    end function
    integer(c_int) function c_vine_factory_set_string(f, name, value) &
        bind(C, name='vine_factory_set_string')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: f
      character(kind=c_char), intent(in) :: name(*), value(*)
    end function
    integer(c_int) function c_vine_tune(m, name, value) bind(C, name='vine_tune')
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: name(*)
      real(c_double), value :: value
    end function
    type(c_ptr) function c_vine_ssl_create(port, key, cert) bind(C, name='vine_ssl_create')
      import :: c_ptr, c_int
      integer(c_int), value :: port
      type(c_ptr), value :: key, cert
    end function
    type(c_ptr) function vine_ssl_create_self_signed(port) bind(C, name='vine_ssl_create_self_signed')
      import :: c_ptr, c_int
      integer(c_int), value :: port
    end function
    type(c_ptr) function c_vine_ssl_fingerprint(m) bind(C, name='vine_ssl_fingerprint')
      import :: c_ptr
      type(c_ptr), value :: m
    end function
    integer(c_int) function c_vine_set_password(m, s) bind(C, name='vine_set_password')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_set_password_file(m, s) bind(C, name='vine_set_password_file')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_set_runtime_info_path_for(m, s) &
        bind(C, name='vine_set_runtime_info_path_for')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_set_name(m, s) bind(C, name='vine_set_name')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, s
    end function
    type(c_ptr) function c_vine_wait_for_tag(m, tag, timeout_s) bind(C, name='vine_wait_for_tag')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, tag
      integer(c_int), value :: timeout_s
    end function
    type(c_ptr) function c_vine_last_error() bind(C, name='vine_last_error')
      import :: c_ptr
    end function
    type(c_ptr) function c_vine_version() bind(C, name='vine_version')
      import :: c_ptr
    end function
    type(c_ptr) function c_vine_result_string(r) bind(C, name='vine_result_string')
      import :: c_ptr, c_int
      integer(c_int), value :: r
    end function
    type(c_ptr) function c_vine_task_create_function(name, input, len) bind(C, name='vine_task_create_function')
      import :: c_ptr, c_char, c_size_t
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: input
      integer(c_size_t), value :: len
    end function
    type(c_ptr) function c_vine_task_create(command) bind(C, name='vine_task_create')
      import :: c_ptr, c_char
      character(kind=c_char), intent(in) :: command(*)
    end function
    integer(c_int) function c_vine_task_set_category(t, s) bind(C, name='vine_task_set_category')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_task_set_tag(t, s) bind(C, name='vine_task_set_tag')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_task_set_env_var(t, name, value) bind(C, name='vine_task_set_env_var')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t, value
      character(kind=c_char), intent(in) :: name(*)
    end function
    type(c_ptr) function c_vine_task_get_stdout(t) bind(C, name='vine_task_get_stdout')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    type(c_ptr) function c_vine_task_get_tag(t) bind(C, name='vine_task_get_tag')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    type(c_ptr) function c_vine_task_get_category(t) bind(C, name='vine_task_get_category')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    type(c_ptr) function c_vine_task_get_command(t) bind(C, name='vine_task_get_command')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    integer(c_int) function c_vine_task_set_command(t, s) bind(C, name='vine_task_set_command')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_task_add_feature(t, s) bind(C, name='vine_task_add_feature')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: s(*)
    end function
    type(c_ptr) function c_vine_task_get_hostname(t) bind(C, name='vine_task_get_hostname')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    type(c_ptr) function c_vine_task_get_addrport(t) bind(C, name='vine_task_get_addrport')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    type(c_ptr) function c_vine_task_get_state(t) bind(C, name='vine_task_get_state')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    integer(c_int) function c_vine_cancel_by_task_tag(m, s) bind(C, name='vine_cancel_by_task_tag')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: s(*)
    end function
    integer(c_int) function c_vine_cancel_all_by_tag(m, s) bind(C, name='vine_cancel_all_by_tag')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, s
    end function
    type(c_ptr) function c_vine_task_get_reason(t) bind(C, name='vine_task_get_reason')
      import :: c_ptr
      type(c_ptr), value :: t
    end function
    integer(c_int64_t) function c_vine_task_get_metric(t, name) bind(C, name='vine_task_get_metric')
      import :: c_ptr, c_int64_t, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: name(*)
    end function
    type(c_ptr) function c_vine_declare_url(m, url, cache, flags) bind(C, name='vine_declare_url')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: url(*)
      integer(c_int), value :: cache, flags
    end function
    type(c_ptr) function c_vine_declare_mini_task(m, t, name, cache, flags) &
        bind(C, name='vine_declare_mini_task')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m, t
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: cache, flags
    end function
    type(c_ptr) function c_vine_declare_file(m, path, cache, flags) bind(C, name='vine_declare_file')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int), value :: cache, flags
    end function
    integer(c_int) function c_vine_task_add_input(t, f, remote, flags) bind(C, name='vine_task_add_input')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t, f
      character(kind=c_char), intent(in) :: remote(*)
      integer(c_int), value :: flags
    end function
    integer(c_int) function c_vine_task_add_output(t, f, remote, flags) bind(C, name='vine_task_add_output')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t, f
      character(kind=c_char), intent(in) :: remote(*)
      integer(c_int), value :: flags
    end function
    integer(c_int) function c_vine_register_function(name, fn) bind(C, name='vine_register_function')
      import :: c_int, c_char, c_funptr
      character(kind=c_char), intent(in) :: name(*)
      type(c_funptr), value :: fn
    end function
    integer(c_size_t) function c_strlen(s) bind(C, name='strlen')
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
    end function
  end interface

  ! Managing workers and settings, as TaskVine names them.
  interface
    integer(c_int) function vine_set_task_id_min(m, minid) bind(C, name='vine_set_task_id_min')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: minid
    end function
    integer(c_int) function c_vine_enable_disconnect_slow_workers_category(m, category, multiplier) &
        bind(C, name='vine_enable_disconnect_slow_workers_category')
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: category(*)
      real(c_double), value :: multiplier
    end function
    integer(c_int) function c_vine_set_bandwidth_limit(m, bandwidth) &
        bind(C, name='vine_set_bandwidth_limit')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: bandwidth(*)
    end function
    ! A C array of pointers to struct vine_resources, NULL-terminated: read it
    ! with c_f_pointer; free each with vine_resources_delete, then the array
    ! with C's free().
    type(c_ptr) function vine_summarize_workers(m) bind(C, name='vine_summarize_workers')
      import :: c_ptr
      type(c_ptr), value :: m
    end function
    integer(c_int) function c_vine_enable_taskgraph_log(m, logfile) &
        bind(C, name='vine_enable_taskgraph_log')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: logfile(*)
    end function
    real(c_double) function vine_get_effective_bandwidth(m) &
        bind(C, name='vine_get_effective_bandwidth')
      import :: c_ptr, c_double
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_set_tasks_left_count(m, ntasks) &
        bind(C, name='vine_set_tasks_left_count')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: ntasks
    end function
    integer(c_int) function vine_unblock_all(m) bind(C, name='vine_unblock_all')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_workers_shutdown(m, n) bind(C, name='vine_workers_shutdown')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: n
    end function
    integer(c_int) function vine_enable_disconnect_slow_workers(m, multiplier) &
        bind(C, name='vine_enable_disconnect_slow_workers')
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: m
      real(c_double), value :: multiplier
    end function
    integer(c_int) function vine_set_keepalive_interval(m, interval) &
        bind(C, name='vine_set_keepalive_interval')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: interval
    end function
    integer(c_int) function vine_set_keepalive_timeout(m, timeout) &
        bind(C, name='vine_set_keepalive_timeout')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: timeout
    end function
    integer(c_int) function vine_enable_peer_transfers(m) bind(C, name='vine_enable_peer_transfers')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_disable_peer_transfers(m) bind(C, name='vine_disable_peer_transfers')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_enable_monitoring(m, watchdog, time_series) &
        bind(C, name='vine_enable_monitoring')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int), value :: watchdog, time_series
    end function
    integer(c_int) function c_vine_set_runtime_info_path(s) bind(C, name='vine_set_runtime_info_path')
      import :: c_int, c_char
      character(kind=c_char), intent(in) :: s(*)
    end function
    type(c_ptr) function c_vine_get_name(m) bind(C, name='vine_get_name')
      import :: c_ptr
      type(c_ptr), value :: m
    end function
    type(c_ptr) function c_vine_version_string() bind(C, name='vine_version_string')
      import :: c_ptr
    end function
    integer(c_int) function c_vine_block_host(m, host) bind(C, name='vine_block_host')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: host(*)
    end function
    integer(c_int) function c_vine_block_host_with_timeout(m, host, seconds) &
        bind(C, name='vine_block_host_with_timeout')
      import :: c_ptr, c_int, c_char, c_int64_t
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: host(*)
      integer(c_int64_t), value :: seconds
    end function
    integer(c_int) function c_vine_unblock_host(m, host) bind(C, name='vine_unblock_host')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: host(*)
    end function
    integer(c_int) function c_vine_set_draining_by_hostname(m, host, drain) &
        bind(C, name='vine_set_draining_by_hostname')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: host(*)
      integer(c_int), value :: drain
    end function
    integer(c_int) function c_vine_set_category_mode(m, category, mode) &
        bind(C, name='vine_set_category_mode')
      import :: c_ptr, c_int
      type(c_ptr), value :: m, category
      integer(c_int), value :: mode
    end function
    integer(c_int) function c_vine_enable_category_resource(m, category, resource, autolabel) &
        bind(C, name='vine_enable_category_resource')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m, category
      character(kind=c_char), intent(in) :: resource(*)
      integer(c_int), value :: autolabel
    end function

    ! Measured resources and sizing.
    type(c_ptr) function vine_resources_create(default_value) bind(C, name='vine_resources_create')
      import :: c_ptr, c_double
      real(c_double), value :: default_value
    end function
    subroutine vine_resources_delete(s) bind(C, name='vine_resources_delete')
      import :: c_ptr
      type(c_ptr), value :: s
    end subroutine
    integer(c_int) function c_vine_resources_set(s, name, v) bind(C, name='vine_resources_set')
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: s
      character(kind=c_char), intent(in) :: name(*)
      real(c_double), value :: v
    end function
    real(c_double) function c_vine_resources_get(s, name) bind(C, name='vine_resources_get')
      import :: c_ptr, c_char, c_double
      type(c_ptr), value :: s
      character(kind=c_char), intent(in) :: name(*)
    end function
    integer(c_int) function vine_enable_proportional_resources(m) &
        bind(C, name='vine_enable_proportional_resources')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function vine_disable_proportional_resources(m) &
        bind(C, name='vine_disable_proportional_resources')
      import :: c_ptr, c_int
      type(c_ptr), value :: m
    end function
    integer(c_int) function c_vine_initialize_categories(m, max, file) &
        bind(C, name='vine_initialize_categories')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m, max
      character(kind=c_char), intent(in) :: file(*)
    end function
    integer(c_int) function c_vine_task_set_monitor_output(t, dir) &
        bind(C, name='vine_task_set_monitor_output')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: dir(*)
    end function
    type(c_ptr) function c_vine_task_get_resources(t, name) bind(C, name='vine_task_get_resources')
      import :: c_ptr, c_char
      type(c_ptr), value :: t
      character(kind=c_char), intent(in) :: name(*)
    end function
    integer(c_int) function vine_task_set_resources(t, rm) bind(C, name='vine_task_set_resources')
      import :: c_ptr, c_int, vine_resources
      type(c_ptr), value :: t
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function c_vine_set_category_resources_max(m, c, rm) &
        bind(C, name='vine_set_category_resources_max')
      import :: c_ptr, c_int, c_char, vine_resources
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: c(*)
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function c_vine_set_category_resources_min(m, c, rm) &
        bind(C, name='vine_set_category_resources_min')
      import :: c_ptr, c_int, c_char, vine_resources
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: c(*)
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function c_vine_set_category_first_allocation_guess(m, c, rm) &
        bind(C, name='vine_set_category_first_allocation_guess')
      import :: c_ptr, c_int, c_char, vine_resources
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: c(*)
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function vine_set_resources_max(m, rm) bind(C, name='vine_set_resources_max')
      import :: c_ptr, c_int, vine_resources
      type(c_ptr), value :: m
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function vine_set_resources_min(m, rm) bind(C, name='vine_set_resources_min')
      import :: c_ptr, c_int, vine_resources
      type(c_ptr), value :: m
      type(vine_resources), intent(in) :: rm
    end function
    integer(c_int) function c_vine_set_category_max_concurrent(m, c, n) &
        bind(C, name='vine_set_category_max_concurrent')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: c(*)
      integer(c_int), value :: n
    end function
    integer(c_int) function c_vine_get_stats_category(m, c, s) bind(C, name='vine_get_stats_category')
      import :: c_ptr, c_int, c_char, vine_stats
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: c(*)
      type(vine_stats), intent(out) :: s
    end function

    ! Logs and the run directory.
    integer(c_int) function c_vine_enable_transactions_log(m, path) &
        bind(C, name='vine_enable_transactions_log')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: path(*)
    end function
    integer(c_int) function c_vine_enable_perf_log(m, path) bind(C, name='vine_enable_perf_log')
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: path(*)
    end function
    integer(c_int) function c_vine_enable_debug_log(path) bind(C, name='vine_enable_debug_log')
      import :: c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
    end function
    subroutine c_vine_log_txn_app(m, entry) bind(C, name='vine_log_txn_app')
      import :: c_ptr, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: entry(*)
    end subroutine
    subroutine c_vine_log_debug_app(m, entry) bind(C, name='vine_log_debug_app')
      import :: c_ptr, c_char
      type(c_ptr), value :: m
      character(kind=c_char), intent(in) :: entry(*)
    end subroutine
    subroutine c_vine_set_runtime_info_template(dir) bind(C, name='vine_set_runtime_info_template')
      import :: c_ptr
      type(c_ptr), value :: dir
    end subroutine
    type(c_ptr) function c_vine_get_runtime_directory(m) bind(C, name='vine_get_runtime_directory')
      import :: c_ptr
      type(c_ptr), value :: m
    end function
    type(c_ptr) function c_vine_get_path_log(m, path) bind(C, name='vine_get_path_log')
      import :: c_ptr
      type(c_ptr), value :: m, path
    end function
    type(c_ptr) function c_vine_get_path_staging(m, path) bind(C, name='vine_get_path_staging')
      import :: c_ptr
      type(c_ptr), value :: m, path
    end function
    type(c_ptr) function c_vine_get_path_library_log(m, path) &
        bind(C, name='vine_get_path_library_log')
      import :: c_ptr
      type(c_ptr), value :: m, path
    end function
    type(c_ptr) function c_vine_get_path_cache(m, path) &
        bind(C, name='vine_get_path_cache')
      import :: c_ptr
      type(c_ptr), value :: m, path
    end function
    subroutine c_free(p) bind(C, name='free')
      import :: c_ptr
      type(c_ptr), value :: p
    end subroutine
  end interface

contains

  !> A Fortran string, without its trailing blanks, as a NUL-terminated C string.
  pure function cstr(s) result(c)
    character(*), intent(in) :: s
    character(kind=c_char, len=len_trim(s) + 1) :: c
    c = s(1:len_trim(s)) // c_null_char
  end function

  !> A C string (NULL: '') as a Fortran string.
  function fstr(p) result(s)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer(c_size_t) :: i, n
    if (.not. c_associated(p)) then
      s = ''
      return
    end if
    n = c_strlen(p)
    call c_f_pointer(p, chars, [n])
    allocate(character(n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function

  !> Frees a task the caller owns: `call vine_task_delete(t)`, as every Fortran
  !> destructor is called. `rc`, if given, receives the C function's result (0, or
  !> VINE_ERROR_TASK_SUBMITTED for a task the manager still has, which is kept).
  !> Once freed, `t` is set to c_null_ptr, so a second delete is VINE_ERROR_NULL
  !> rather than a double free; `t` must therefore be a variable.
  subroutine vine_task_delete(t, rc)
    type(c_ptr), intent(inout) :: t
    integer(c_int), intent(out), optional :: rc
    integer(c_int) :: r
    r = vine_task_delete_c(t)
    if (r == 0) t = c_null_ptr
    if (present(rc)) rc = r
  end subroutine

  integer(c_int) function vine_tune(m, name, value)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: name
    real(c_double), intent(in) :: value
    vine_tune = c_vine_tune(m, cstr(name), value)
  end function

  !> A manager whose workers connect with TLS under the PEM key and certificate.
  !> Empty key and cert: no TLS, as vine_create (see vine_ssl_create_self_signed).
  function vine_ssl_create(port, key, cert) result(m)
    integer(c_int), intent(in) :: port
    character(*), intent(in) :: key, cert
    type(c_ptr) :: m
    character(kind=c_char, len=len(key) + 1), target :: k
    character(kind=c_char, len=len(cert) + 1), target :: c
    ! Blank is empty here, as for every string the module passes.
    if (len_trim(key) == 0 .and. len_trim(cert) == 0) then
      m = c_vine_ssl_create(port, c_null_ptr, c_null_ptr)
    else
      k = cstr(key)
      c = cstr(cert)
      m = c_vine_ssl_create(port, c_loc(k), c_loc(c))
    end if
  end function

  function vine_ssl_fingerprint(m) result(s)
    type(c_ptr), intent(in) :: m
    character(:), allocatable :: s
    s = fstr(c_vine_ssl_fingerprint(m))
  end function

  !> A factory getting workers for m from a batch system ('local', 'slurm', 'custom').
  type(c_ptr) function vine_factory_create(m, batch_type)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: batch_type
    vine_factory_create = c_vine_factory_create(m, cstr(batch_type))
  end function

  integer(c_int) function vine_factory_set(f, name, value)
    type(c_ptr), intent(in) :: f
    character(*), intent(in) :: name
    real(c_double), intent(in) :: value
    vine_factory_set = c_vine_factory_set(f, cstr(name), value)
  end function

  integer(c_int) function vine_factory_set_string(f, name, value)
    type(c_ptr), intent(in) :: f
    character(*), intent(in) :: name, value
    vine_factory_set_string = c_vine_factory_set_string(f, cstr(name), cstr(value))
  end function

  integer(c_int) function vine_set_password(m, password)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: password
    vine_set_password = c_vine_set_password(m, cstr(password))
  end function

  integer(c_int) function vine_set_password_file(m, path)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: path
    vine_set_password_file = c_vine_set_password_file(m, cstr(path))
  end function

  integer(c_int) function vine_set_runtime_info_path_for(m, dir)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: dir
    vine_set_runtime_info_path_for = c_vine_set_runtime_info_path_for(m, cstr(dir))
  end function

  integer(c_int) function vine_enable_taskgraph_log(m, logfile)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: logfile
    vine_enable_taskgraph_log = c_vine_enable_taskgraph_log(m, cstr(logfile))
  end function

  integer(c_int) function vine_set_bandwidth_limit(m, bandwidth)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: bandwidth
    vine_set_bandwidth_limit = c_vine_set_bandwidth_limit(m, cstr(bandwidth))
  end function

  !> name absent: forget the name (C's NULL).
  integer(c_int) function vine_set_name(m, name)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: name
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(name)) then
      c = cstr(name)
      vine_set_name = c_vine_set_name(m, c_loc(c))
    else
      vine_set_name = c_vine_set_name(m, c_null_ptr)
    end if
  end function

  !> tag absent (call with timeout_s=...): any task, as vine_wait (C's NULL).
  type(c_ptr) function vine_wait_for_tag(m, tag, timeout_s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: tag
    integer(c_int), intent(in) :: timeout_s
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(tag)) then
      c = cstr(tag)
      vine_wait_for_tag = c_vine_wait_for_tag(m, c_loc(c), timeout_s)
    else
      vine_wait_for_tag = c_vine_wait_for_tag(m, c_null_ptr, timeout_s)
    end if
  end function

  function vine_last_error() result(s)
    character(:), allocatable :: s
    s = fstr(c_vine_last_error())
  end function

  function vine_version() result(s)
    character(:), allocatable :: s
    s = fstr(c_vine_version())
  end function

  function vine_result_string(r) result(s)
    integer(c_int), intent(in) :: r
    character(:), allocatable :: s
    s = fstr(c_vine_result_string(r))
  end function

  !> input: c_loc of a TARGET variable or array (or c_null_ptr with input_len 0).
  type(c_ptr) function vine_task_create_function(name, input, input_len)
    character(*), intent(in) :: name
    type(c_ptr), intent(in) :: input
    integer(c_size_t), intent(in) :: input_len
    vine_task_create_function = c_vine_task_create_function(cstr(name), input, input_len)
  end function

  type(c_ptr) function vine_task_create(command)
    character(*), intent(in) :: command
    vine_task_create = c_vine_task_create(cstr(command))
  end function

  integer(c_int) function vine_task_set_category(t, category)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: category
    vine_task_set_category = c_vine_task_set_category(t, cstr(category))
  end function

  integer(c_int) function vine_task_set_tag(t, tag)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: tag
    vine_task_set_tag = c_vine_task_set_tag(t, cstr(tag))
  end function

  !> value absent: the variable is unset for the command (C's NULL).
  integer(c_int) function vine_task_set_env_var(t, name, value)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: name
    character(*), intent(in), optional :: value
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(value)) then
      c = cstr(value)
      vine_task_set_env_var = c_vine_task_set_env_var(t, cstr(name), c_loc(c))
    else
      vine_task_set_env_var = c_vine_task_set_env_var(t, cstr(name), c_null_ptr)
    end if
  end function

  function vine_task_get_stdout(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_stdout(t))
  end function

  function vine_task_get_tag(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_tag(t))
  end function

  function vine_task_get_category(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_category(t))
  end function

  function vine_task_get_command(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_command(t))
  end function

  integer(c_int) function vine_task_set_command(t, cmd)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: cmd
    vine_task_set_command = c_vine_task_set_command(t, cstr(cmd))
  end function

  integer(c_int) function vine_task_add_feature(t, name)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: name
    vine_task_add_feature = c_vine_task_add_feature(t, cstr(name))
  end function

  function vine_task_get_hostname(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_hostname(t))
  end function

  function vine_task_get_addrport(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_addrport(t))
  end function

  function vine_task_get_state(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_state(t))
  end function

  integer(c_int) function vine_cancel_by_task_tag(m, tag)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: tag
    vine_cancel_by_task_tag = c_vine_cancel_by_task_tag(m, cstr(tag))
  end function

  !> tag absent: the tasks that have no tag (C's NULL).
  integer(c_int) function vine_cancel_all_by_tag(m, tag)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: tag
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(tag)) then
      c = cstr(tag)
      vine_cancel_all_by_tag = c_vine_cancel_all_by_tag(m, c_loc(c))
    else
      vine_cancel_all_by_tag = c_vine_cancel_all_by_tag(m, c_null_ptr)
    end if
  end function

  function vine_task_get_reason(t) result(s)
    type(c_ptr), intent(in) :: t
    character(:), allocatable :: s
    s = fstr(c_vine_task_get_reason(t))
  end function

  integer(c_int64_t) function vine_task_get_metric(t, name)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: name
    vine_task_get_metric = c_vine_task_get_metric(t, cstr(name))
  end function

  type(c_ptr) function vine_declare_file(m, path, cache, flags)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: path
    integer(c_int), intent(in) :: cache, flags
    vine_declare_file = c_vine_declare_file(m, cstr(path), cache, flags)
  end function

  type(c_ptr) function vine_declare_url(m, url, cache, flags)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: url
    integer(c_int), intent(in) :: cache, flags
    vine_declare_url = c_vine_declare_url(m, cstr(url), cache, flags)
  end function

  !> The file takes the task over: do not delete it afterwards.
  type(c_ptr) function vine_declare_mini_task(m, t, name, cache, flags)
    type(c_ptr), intent(in) :: m, t
    character(*), intent(in) :: name
    integer(c_int), intent(in) :: cache, flags
    vine_declare_mini_task = c_vine_declare_mini_task(m, t, cstr(name), cache, flags)
  end function

  integer(c_int) function vine_task_add_input(t, f, remote_name, flags)
    type(c_ptr), intent(in) :: t, f
    character(*), intent(in) :: remote_name
    integer(c_int), intent(in) :: flags
    vine_task_add_input = c_vine_task_add_input(t, f, cstr(remote_name), flags)
  end function

  integer(c_int) function vine_task_add_output(t, f, remote_name, flags)
    type(c_ptr), intent(in) :: t, f
    character(*), intent(in) :: remote_name
    integer(c_int), intent(in) :: flags
    vine_task_add_output = c_vine_task_add_output(t, f, cstr(remote_name), flags)
  end function

  !> fn: c_funloc of a bind(C) task function (see the top of this file).
  integer(c_int) function vine_register_function(name, fn)
    character(*), intent(in) :: name
    type(c_funptr), value :: fn
    vine_register_function = c_vine_register_function(cstr(name), fn)
  end function

  !> Managers created from now on keep their log under dir (TaskVine's call).
  integer(c_int) function vine_set_runtime_info_path(dir)
    character(*), intent(in) :: dir
    vine_set_runtime_info_path = c_vine_set_runtime_info_path(cstr(dir))
  end function

  function vine_get_name(m) result(s)
    type(c_ptr), intent(in) :: m
    character(:), allocatable :: s
    s = fstr(c_vine_get_name(m))
  end function

  function vine_version_string() result(s)
    character(:), allocatable :: s
    s = fstr(c_vine_version_string())
  end function

  integer(c_int) function vine_enable_disconnect_slow_workers_category(m, category, multiplier)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    real(c_double), intent(in) :: multiplier
    vine_enable_disconnect_slow_workers_category = &
        c_vine_enable_disconnect_slow_workers_category(m, cstr(category), multiplier)
  end function

  integer(c_int) function vine_block_host(m, host)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: host
    vine_block_host = c_vine_block_host(m, cstr(host))
  end function

  integer(c_int) function vine_block_host_with_timeout(m, host, seconds)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: host
    integer(c_int64_t), intent(in) :: seconds
    vine_block_host_with_timeout = c_vine_block_host_with_timeout(m, cstr(host), seconds)
  end function

  integer(c_int) function vine_unblock_host(m, host)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: host
    vine_unblock_host = c_vine_unblock_host(m, cstr(host))
  end function

  integer(c_int) function vine_set_draining_by_hostname(m, host, drain)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: host
    integer(c_int), intent(in) :: drain
    vine_set_draining_by_hostname = c_vine_set_draining_by_hostname(m, cstr(host), drain)
  end function

  !> category absent (call with mode=...): the default of every category
  !> (TaskVine's NULL).
  integer(c_int) function vine_set_category_mode(m, category, mode)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: category
    integer(c_int), intent(in) :: mode
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(category)) then
      c = cstr(category)
      vine_set_category_mode = c_vine_set_category_mode(m, c_loc(c), mode)
    else
      vine_set_category_mode = c_vine_set_category_mode(m, c_null_ptr, mode)
    end if
  end function

  !> category absent (call with resource=..., autolabel=...): the default of
  !> every category (TaskVine's NULL).
  integer(c_int) function vine_enable_category_resource(m, category, resource, autolabel)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: category
    character(*), intent(in) :: resource
    integer(c_int), intent(in) :: autolabel
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(category)) then
      c = cstr(category)
      vine_enable_category_resource = &
        c_vine_enable_category_resource(m, c_loc(c), cstr(resource), autolabel)
    else
      vine_enable_category_resource = &
        c_vine_enable_category_resource(m, c_null_ptr, cstr(resource), autolabel)
    end if
  end function

  !> Counts the resource summaries in `file` as measured by tasks of their
  !> categories, each figure bounded by `max` (c_null_ptr: none); 0 or an error.
  integer(c_int) function vine_initialize_categories(m, max, file)
    type(c_ptr), intent(in) :: m, max
    character(*), intent(in) :: file
    vine_initialize_categories = c_vine_initialize_categories(m, max, cstr(file))
  end function

  !> Writes what task `t` used into directory `dir` when it ends (1), or 0 on error.
  integer(c_int) function vine_task_set_monitor_output(t, dir)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: dir
    vine_task_set_monitor_output = c_vine_task_set_monitor_output(t, cstr(dir))
  end function

  !> Sets the number called `name` of summary `s` (1), or 0 if it has none.
  integer(c_int) function vine_resources_set(s, name, v)
    type(c_ptr), intent(in) :: s
    character(*), intent(in) :: name
    real(c_double), intent(in) :: v
    vine_resources_set = c_vine_resources_set(s, cstr(name), v)
  end function

  !> The number called `name` of summary `s`, or -1.
  real(c_double) function vine_resources_get(s, name)
    type(c_ptr), intent(in) :: s
    character(*), intent(in) :: name
    vine_resources_get = c_vine_resources_get(s, cstr(name))
  end function

  !> The task's "measured", "allocated" or "requested" resources; null if none
  !> (use c_f_pointer to read it as a type(vine_resources)). The task owns it.
  type(c_ptr) function vine_task_get_resources(t, name)
    type(c_ptr), intent(in) :: t
    character(*), intent(in) :: name
    vine_task_get_resources = c_vine_task_get_resources(t, cstr(name))
  end function

  integer(c_int) function vine_set_category_resources_max(m, category, rm)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    type(vine_resources), intent(in) :: rm
    vine_set_category_resources_max = c_vine_set_category_resources_max(m, cstr(category), rm)
  end function

  integer(c_int) function vine_set_category_resources_min(m, category, rm)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    type(vine_resources), intent(in) :: rm
    vine_set_category_resources_min = c_vine_set_category_resources_min(m, cstr(category), rm)
  end function

  integer(c_int) function vine_set_category_first_allocation_guess(m, category, rm)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    type(vine_resources), intent(in) :: rm
    vine_set_category_first_allocation_guess = &
        c_vine_set_category_first_allocation_guess(m, cstr(category), rm)
  end function

  integer(c_int) function vine_set_category_max_concurrent(m, category, n)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    integer(c_int), intent(in) :: n
    vine_set_category_max_concurrent = c_vine_set_category_max_concurrent(m, cstr(category), n)
  end function

  integer(c_int) function vine_get_stats_category(m, category, s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: category
    type(vine_stats), intent(out) :: s
    vine_get_stats_category = c_vine_get_stats_category(m, cstr(category), s)
  end function

  !> The contents of a buffer, temp or file as a Fortran string, every byte of
  !> them (NUL bytes too); '' on error.
  function vine_fetch_file_string(m, f) result(s)
    type(c_ptr), intent(in) :: m, f
    character(:), allocatable :: s
    type(c_ptr) :: p
    integer(c_size_t) :: n
    character(kind=c_char), pointer :: chars(:)
    integer(c_size_t) :: i
    p = vine_fetch_file_len(m, f, n)
    if (.not. c_associated(p)) then
      s = ''
      return
    end if
    call c_f_pointer(p, chars, [n])
    allocate(character(n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function

  !> Writes the transactions log to `path` (1 if opened, 0 if not).
  integer(c_int) function vine_enable_transactions_log(m, path)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: path
    vine_enable_transactions_log = c_vine_enable_transactions_log(m, cstr(path))
  end function

  !> Writes the performance log to `path` (1 if opened, 0 if not).
  integer(c_int) function vine_enable_perf_log(m, path)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: path
    vine_enable_perf_log = c_vine_enable_perf_log(m, cstr(path))
  end function

  !> Writes every manager's debug log to `path` (1 if opened, 0 if not).
  integer(c_int) function vine_enable_debug_log(path)
    character(*), intent(in) :: path
    vine_enable_debug_log = c_vine_enable_debug_log(cstr(path))
  end function

  !> Adds an APPLICATION record to the transactions log.
  subroutine vine_log_txn_app(m, entry)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: entry
    call c_vine_log_txn_app(m, cstr(entry))
  end subroutine

  !> Adds a line to the debug log.
  subroutine vine_log_debug_app(m, entry)
    type(c_ptr), intent(in) :: m
    character(*), intent(in) :: entry
    call c_vine_log_debug_app(m, cstr(entry))
  end subroutine

  !> Names the run directories of managers created from now on (dir absent:
  !> the default again, C's NULL).
  subroutine vine_set_runtime_info_template(dir)
    character(*), intent(in), optional :: dir
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(dir)) then
      c = cstr(dir)
      call c_vine_set_runtime_info_template(c_loc(c))
    else
      call c_vine_set_runtime_info_template(c_null_ptr)
    end if
  end subroutine

  !> The manager's run directory ('' if it writes no logs).
  function vine_get_runtime_directory(m) result(s)
    type(c_ptr), intent(in) :: m
    character(:), allocatable :: s
    s = fstr(c_vine_get_runtime_directory(m))
  end function

  !> `RUNDIR/vine-logs/path` ('' if the manager writes no logs; path absent:
  !> `RUNDIR/vine-logs`, C's NULL). So are the three below, each in its place.
  function vine_get_path_log(m, path) result(s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: path
    character(:), allocatable :: s
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(path)) then
      c = cstr(path)
      s = owned_str(c_vine_get_path_log(m, c_loc(c)))
    else
      s = owned_str(c_vine_get_path_log(m, c_null_ptr))
    end if
  end function

  function vine_get_path_staging(m, path) result(s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: path
    character(:), allocatable :: s
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(path)) then
      c = cstr(path)
      s = owned_str(c_vine_get_path_staging(m, c_loc(c)))
    else
      s = owned_str(c_vine_get_path_staging(m, c_null_ptr))
    end if
  end function

  function vine_get_path_library_log(m, path) result(s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: path
    character(:), allocatable :: s
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(path)) then
      c = cstr(path)
      s = owned_str(c_vine_get_path_library_log(m, c_loc(c)))
    else
      s = owned_str(c_vine_get_path_library_log(m, c_null_ptr))
    end if
  end function

  function vine_get_path_cache(m, path) result(s)
    type(c_ptr), intent(in) :: m
    character(*), intent(in), optional :: path
    character(:), allocatable :: s
    character(kind=c_char, len=:), allocatable, target :: c
    if (present(path)) then
      c = cstr(path)
      s = owned_str(c_vine_get_path_cache(m, c_loc(c)))
    else
      s = owned_str(c_vine_get_path_cache(m, c_null_ptr))
    end if
  end function

  !> Where file f comes from (a path, a URL, "buffer", ...; '' for an unknown file).
  function vine_file_source(f) result(s)
    type(c_ptr), intent(in) :: f
    character(:), allocatable :: s
    s = fstr(c_vine_file_source(f))
  end function

  ! A string the library allocated for the caller, copied and freed.
  function owned_str(p) result(s)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: s
    s = fstr(p)
    if (c_associated(p)) call c_free(p)
  end function

end module vine
