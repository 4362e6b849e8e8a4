! The Fortran module: submit, wait, outputs into arrays, errors, commands, files,
! shutdown. Prints "N passed, M failed" and stops with 1 on a failure.
module test_tasks
  use, intrinsic :: iso_c_binding
  use vine
  implicit none
contains
  !> Doubles every element of a real(8) array.
  recursive integer(c_int) function double_all(input, input_len, output, context) bind(C)
    type(c_ptr), value :: input, output, context
    integer(c_size_t), value :: input_len
    real(c_double), pointer :: xs(:)
    real(c_double), allocatable, target :: ys(:)
    double_all = 1
    if (c_associated(context)) return
    call c_f_pointer(input, xs, [input_len / c_sizeof(0.0_c_double)])
    ys = 2 * xs
    double_all = vine_buffer_append(output, c_loc(ys), int(size(ys) * c_sizeof(0.0_c_double), c_size_t))
  end function

  recursive integer(c_int) function fails(input, input_len, output, context) bind(C)
    type(c_ptr), value :: input, output, context
    integer(c_size_t), value :: input_len
    fails = 9
    if (c_associated(input) .and. input_len > 0 .and. c_associated(output) .and. c_associated(context)) fails = 10
  end function
end module test_tasks

program test
  use, intrinsic :: iso_c_binding
  use vine
  use test_tasks
  implicit none
  integer :: passed = 0, failed = 0
  type(c_ptr) :: m, t, p, f
  real(c_double), target :: xs(5) = [1, 2, 3, 4, 5]
  real(c_double), pointer :: ys(:)
  integer(c_size_t) :: n
  integer(c_int) :: rc, id
  type(vine_stats) :: s
  integer :: back
  type(c_ptr) :: rp
  type(vine_resources), pointer :: r
  character(len=64) :: blank_key, blank_cert

  call check(vine_register_function('double_all', c_funloc(double_all)) == 0, 'register')
  call check(vine_register_function('fails', c_funloc(fails)) == 0, 'register fails')
  call check(vine_register_function('double_all', c_funloc(fails)) == VINE_ERROR_DUPLICATE_FUNCTION, 'duplicate')
  call check(len(vine_last_error()) > 0, 'last error')
  call check(vine_last_error_code() == VINE_ERROR_DUPLICATE_FUNCTION, 'last error code')
  call check(len(vine_version()) >= 5, 'version')

  m = vine_create(VINE_PORT_NONE)
  call check(c_associated(m), 'create')
  call check(vine_tune(m, 'local-cores', 2.0_c_double) == 0, 'tune')
  call check(vine_enable_disconnect_slow_workers_category(m, 'sweep', 3.0_c_double) == 0, 'slow category')
  call check(vine_enable_disconnect_slow_workers_category(m, '', 3.0_c_double) == VINE_ERROR_INVALID_ARGUMENT, &
             'slow category empty')
  call check(vine_set_tasks_left_count(m, 10_c_int) == 0, 'tasks left')
  call check(vine_set_bandwidth_limit(m, '10MB') == 0, 'bandwidth limit')
  call check(vine_set_bandwidth_limit(m, 'fast') == VINE_ERROR_INVALID_ARGUMENT, 'bad bandwidth limit')
  call check(vine_get_effective_bandwidth(m) == 0.0_c_double, 'no bandwidth yet')
  call check(vine_enable_taskgraph_log(m, '/proc/no/such/dir/graph.dot') == 0, 'task graph log refused')
  call check(len(vine_get_path_staging(m, 'x')) == 0, 'no staging path without a run directory')
  call check(len(vine_get_path_library_log(m, 'x')) == 0, 'no library log path without a run directory')
  call check(len(vine_get_path_cache(m, 'x')) == 0, 'no cache path without a run directory')
  call check(len(vine_get_path_log(m)) == 0, 'no log directory without a run directory')
  call check(vine_tune(m, 'no-such-setting', 1.0_c_double) == VINE_ERROR_UNKNOWN_SETTING, 'unknown setting')
  ! TaskVine's manager calls.
  call check(len(vine_get_name(m)) == 0, 'no name set')
  call check(vine_version_string() == vine_version(), 'version string')
  call check(vine_set_category_mode(m, mode=VINE_ALLOCATION_MODE_MAX) == 1, 'default category mode')
  call check(vine_set_category_mode(m, 'c', VINE_ALLOCATION_MODE_FIXED) == 1, 'category mode')
  call check(vine_set_category_mode(m, 'c', 99_c_int) == 0, 'not a mode')
  call check(vine_enable_category_resource(m, 'c', 'memory', 0_c_int) == 1, 'category resource')
  call check(vine_enable_category_resource(m, resource='gpus', autolabel=0_c_int) == 1, &
    'default category resource')
  call check(vine_enable_category_resource(m, 'c', 'cpus', 1_c_int) == 0, 'not a resource')
  call check(vine_block_host(m, 'node7') == 0 .and. vine_unblock_host(m, 'node7') == 0, 'block')
  call check(vine_workers_shutdown(m, 0_c_int) == 0, 'no remote workers')
  call check(vine_enable_peer_transfers(m) == 1, 'peer transfers')
  call check(vine_file_replica_count(m, c_null_ptr) < 0, 'no file, no count')

  ! An array in, an array out.
  t = vine_task_create_function('double_all', c_loc(xs), int(c_sizeof(xs), c_size_t))
  call check(vine_task_set_tag(t, 'arrays') == 0, 'tag')
  id = vine_submit(m, t)
  call check(id >= 1, 'submit')
  t = vine_wait_for_task_id(m, id, 60)
  call check(vine_task_get_result(t) == VINE_RESULT_SUCCESS, 'result')
  call check(vine_task_get_tag(t) == 'arrays', 'tag back')
  call check(vine_task_get_category(t) == 'double_all', 'autocategory')
  p = vine_task_get_output(t, n)
  call c_f_pointer(p, ys, [n / c_sizeof(0.0_c_double)])
  call check(size(ys) == 5, 'output size')
  call check(all(ys == 2 * xs), 'output values')
  call vine_task_delete(t)

  ! Errors: a failing function, an unknown one, bad arguments.
  id = vine_submit(m, vine_task_create_function('fails', c_null_ptr, 0_c_size_t))
  t = vine_wait(m, 60)
  call check(vine_task_get_result(t) == VINE_RESULT_FUNCTION_ERROR, 'function error')
  call check(vine_task_get_exit_code(t) == 9, 'exit code')
  call check(vine_result_string(vine_task_get_result(t)) == 'FUNCTION_ERROR', 'result string')
  call check(len(vine_task_get_reason(t)) > 0, 'reason')
  call vine_task_delete(t)
  id = vine_submit(m, vine_task_create_function('not_registered', c_null_ptr, 0_c_size_t))
  t = vine_wait(m, 60)
  call check(vine_task_get_result(t) == VINE_RESULT_MISSING_FUNCTION, 'missing function')
  call check(vine_task_set_cores(t, -1.0_c_double) == VINE_ERROR_INVALID_ARGUMENT, 'bad cores')
  call check(vine_task_get_metric(t, 'no_such') == 0, 'unknown metric is 0')
  call vine_task_delete(t)
  call check(vine_cancel_by_task_id(m, 9999) == VINE_ERROR_UNKNOWN_TASK, 'unknown id')
  ! No tag given: the tasks that have none (C's NULL), not those tagged ''.
  id = vine_submit(m, vine_task_create('sleep 60'))
  call check(vine_cancel_all_by_tag(m) == 1, 'cancel the untagged task')
  t = vine_wait_for_task_id(m, id, 60)
  call check(vine_task_get_result(t) == VINE_RESULT_CANCELLED, 'untagged task cancelled')
  call vine_task_delete(t)

  ! A command with a buffer input and a buffer output.
  f = vine_declare_buffer(m, c_loc(xs), int(c_sizeof(xs), c_size_t), VINE_CACHE_LEVEL_TASK, 0)
  call check(vine_file_source(f) == 'buffer', 'file source')
  t = vine_task_create('wc -c < in > out; echo $GREETING')
  call check(vine_task_add_input(t, f, 'in', 0) == 0, 'add input')
  call check(vine_task_add_input(t, f, '../escape', 0) == VINE_ERROR_INVALID_ARGUMENT, 'escape refused')
  p = vine_declare_buffer(m, c_null_ptr, 0_c_size_t, VINE_CACHE_LEVEL_TASK, 0)
  call check(vine_task_add_output(t, p, 'out', 0) == 0, 'add output')
  call check(vine_task_set_env_var(t, 'GREETING', 'hello fortran') == 0, 'env')
  ! A fixed-length variable passes what it holds, not its blank padding.
  call check(vine_task_set_tag(t, 'padded    ') == 0, 'tag')
  call check(vine_task_get_tag(t) == 'padded' .and. len(vine_task_get_tag(t)) == 6, 'trailing blanks dropped')
  id = vine_submit(m, t)
  call vine_task_delete(t, rc)
  call check(rc == VINE_ERROR_TASK_SUBMITTED, 'a submitted task is kept')
  t = vine_wait(m, 60)
  call check(vine_task_get_result(t) == VINE_RESULT_SUCCESS, 'command')
  call check(vine_task_get_stdout(t) == 'hello fortran' // new_line('a'), 'stdout')
  call check(vine_task_get_command(t) == 'wc -c < in > out; echo $GREETING', 'command text')
  call check(vine_fetch_file_string(m, p) == '40' // new_line('a'), 'fetched output')
  ! Every byte of a buffer whose bytes include NULs (1.0 is six of them, and more).
  call check(len(vine_fetch_file_string(m, f)) == 40, 'fetched bytes with NULs')
  n = 1
  call check(c_associated(vine_fetch_file_len(m, f, n)) .and. n == 40, 'fetched length')
  call vine_task_delete(t, rc)
  call check(rc == 0, 'task deleted')
  call check(.not. c_associated(t), 'a deleted task is c_null_ptr')
  call vine_task_delete(t, rc)
  call check(rc == VINE_ERROR_NULL, 'deleting it again is an error, not a double free')

  ! Absent optional arguments are C's NULL: an unset variable, any tag, no name.
  t = vine_task_create('echo "[${VINE_FORTRAN_UNSET-unset}]"')
  call check(vine_task_set_env_var(t, 'VINE_FORTRAN_UNSET', 'set') == 0, 'env set')
  call check(vine_task_set_env_var(t, 'VINE_FORTRAN_UNSET') == 0, 'env unset')
  call check(vine_task_set_tag(t, 'some tag') == 0, 'tag for any')
  id = vine_submit(m, t)
  t = vine_wait_for_tag(m, timeout_s=60)
  call check(c_associated(t), 'any tag')
  call check(vine_task_get_stdout(t) == '[unset]' // new_line('a'), 'unset variable')
  call vine_task_delete(t)
  ! (Two statements each: Fortran may evaluate the operands of .and. in any order.)
  call check(vine_set_name(m, 'named') == 0, 'name set')
  call check(vine_get_name(m) == 'named', 'name')
  call check(vine_set_name(m) == 0, 'name forgotten')
  call check(vine_get_name(m) == '', 'no name')

  ! Shutdown with work outstanding: every task comes back.
  do back = 1, 20
    id = vine_submit(m, vine_task_create('true'))
  end do
  call check(vine_shutdown(m) == 0, 'shutdown')
  call check(vine_submit(m, vine_task_create('true')) == 0, 'submit after shutdown')
  back = 0
  do
    t = vine_wait(m, 60)
    if (.not. c_associated(t)) exit
    back = back + 1
    call vine_task_delete(t)
  end do
  call check(back == 20, 'all back')
  call check(vine_get_stats(m, s) == 0, 'stats')
  call check(s%tasks_submitted == 26, 'stats submitted')
  ! Fields at both ends of the struct read right: the layouts agree.
  call check(s%tasks_done == 26 .and. s%total_cores_exact > 0 .and. s%time_when_started > 0, 'stats layout')
  call vine_delete(m)

  ! Measured resources and category bounds, through TaskVine's struct vine_resources.
  m = vine_create(VINE_PORT_NONE)
  call check(vine_tune(m, 'local-cores', 2.0_c_double) == 0, 'tune 2')
  rp = vine_resources_create(-1.0_c_double)
  call c_f_pointer(rp, r)
  call check(r%cores == -1 .and. .not. c_associated(r%category), 'vine_resources unset')
  call check(vine_resources_set(rp, 'memory', 100.0_c_double) == 1, 'resources set')
  call check(vine_resources_get(rp, 'memory') == 100, 'resources get')
  r%memory = 120
  call check(vine_set_category_resources_max(m, 'fcat', r) == 0, 'category max')
  call check(vine_set_category_max_concurrent(m, 'fcat', 1_c_int) == 0, 'max concurrent')
  call check(vine_enable_monitoring(m, 1_c_int, 0_c_int) == 1, 'monitoring')
  t = vine_task_create('dd if=/dev/zero of=/dev/null bs=1M count=20 2>/dev/null')
  call check(vine_task_set_category(t, 'fcat') == 0, 'fcat')
  call check(vine_task_set_monitor_output(t, '') == 0, 'empty monitor output')
  call check(vine_enable_proportional_resources(m) == 0, 'proportional on')
  call check(vine_disable_proportional_resources(m) == 0, 'proportional off')
  call check(vine_initialize_categories(m, c_null_ptr, '/no/such/summaries') == &
    VINE_ERROR_IO, 'summaries not found')
  call check(vine_submit(m, t) > 0, 'submit fcat')
  t = vine_wait(m, 60)
  call check(c_associated(t), 'fcat back')
  call c_f_pointer(vine_task_get_resources(t, 'allocated'), r)
  call check(r%memory == 120 .and. r%cores == 1, 'allocated from the category max')
  call check(c_associated(vine_task_get_resources(t, 'measured')), 'measured')
  call check(.not. c_associated(vine_task_get_resources(t, 'nonsense')), 'bad summary name')
  call vine_task_delete(t)
  call check(vine_get_stats_category(m, 'fcat', s) == 0 .and. s%tasks_done == 1, 'category stats')
  call vine_resources_delete(rp)
  call vine_delete(m)

  ! Blank fixed-length key and cert hold nothing: no TLS, as with ''.
  blank_key = ''
  blank_cert = ''
  m = vine_ssl_create(VINE_PORT_NONE, blank_key, blank_cert)
  call check(c_associated(m), 'ssl create with blank key and cert')
  if (c_associated(m)) call vine_delete(m)

  print '(i0, a, i0, a)', passed, ' passed, ', failed, ' failed'
  if (failed /= 0) stop 1

contains
  subroutine check(ok, what)
    logical, intent(in) :: ok
    character(*), intent(in) :: what
    if (ok) then
      passed = passed + 1
    else
      failed = failed + 1
      print *, 'FAIL: ', what, ' (last error: ', vine_last_error(), ')'
    end if
  end subroutine
end program test
