! Quadrature in Fortran: the integral of sin(x) over [0, pi] (exactly 2), split into
! slices, one task per slice, swept over several step counts. The input of each
! task is a real(8) array (a, b, steps); its output is one real(8). Checks its answer.
module sweep_tasks
  use, intrinsic :: iso_c_binding
  use vine
  implicit none
contains
  recursive integer(c_int) function integrate(input, input_len, output, context) bind(C)
    type(c_ptr), value :: input, output, context
    integer(c_size_t), value :: input_len
    real(c_double), pointer :: args(:)
    real(c_double), target :: part
    real(c_double) :: h
    integer :: i, n
    integrate = 1
    if (c_associated(context) .or. input_len /= 3 * c_sizeof(0.0_c_double)) return
    call c_f_pointer(input, args, [3])
    n = int(args(3))
    h = (args(2) - args(1)) / n
    part = 0
    do i = 0, n - 1
      part = part + sin(args(1) + (i + 0.5_c_double) * h)
    end do
    part = part * h
    integrate = vine_buffer_append(output, c_loc(part), int(c_sizeof(part), c_size_t))
  end function
end module sweep_tasks

program sweep
  use, intrinsic :: iso_c_binding
  use vine
  use sweep_tasks
  implicit none
  integer, parameter :: nslices = 8
  integer, parameter :: steps(3) = [100, 1000, 10000]
  real(c_double), parameter :: pi = 4 * atan(1.0_c_double)
  type(c_ptr) :: m, t, p
  real(c_double), target :: args(3)
  real(c_double), pointer :: value
  real(c_double) :: total(size(steps))
  integer(c_size_t) :: n
  integer :: i, k, rc, id, which(1000)
  logical :: ok

  rc = vine_register_function('integrate', c_funloc(integrate))
  m = vine_create(VINE_PORT_NONE)
  if (.not. c_associated(m)) stop 'vine_create failed'
  do k = 1, size(steps)
    do i = 1, nslices
      args = [pi * (i - 1) / nslices, pi * i / nslices, real(steps(k) / nslices, c_double)]
      t = vine_task_create_function('integrate', c_loc(args), int(c_sizeof(args), c_size_t))
      rc = vine_task_set_cores(t, 0.5_c_double)
      id = vine_submit(m, t)
      if (id <= 0) then
        print *, 'submit: ', vine_last_error()
        stop 1
      end if
      which(id) = k
    end do
  end do
  total = 0
  do
    t = vine_wait(m, VINE_WAIT_FOREVER)
    if (.not. c_associated(t)) exit
    if (vine_task_get_result(t) /= VINE_RESULT_SUCCESS) then
      print *, 'task failed: ', vine_result_string(vine_task_get_result(t)), ' ', vine_task_get_reason(t)
      stop 1
    end if
    p = vine_task_get_output(t, n)
    call c_f_pointer(p, value)
    k = which(vine_task_get_id(t))
    total(k) = total(k) + value
    call vine_task_delete(t)
  end do
  call vine_delete(m)
  ok = .true.
  do k = 1, size(steps)
    print '(a, i6, a, f16.12, a, es9.2)', 'steps ', steps(k), ': ', total(k), '  error ', abs(total(k) - 2)
    ok = ok .and. abs(total(k) - 2) < 1.0_c_double / steps(k)**2 * 2
  end do
  if (.not. ok) stop 1
end program sweep
