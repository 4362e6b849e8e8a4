# vine: build, demo, test, benchmark, install.
#   make demo     build the library and run the example workflows on local workers
#   make test     run every test (Rust, C harness + valgrind + ASan/UBSan, C++/Fortran, examples, install)
#   make bench    run the benchmarks side by side with their peers
#   make install PREFIX=/usr/local
#   make header   regenerate include/vine.h after changing the C API

CARGO  ?= cargo
PREFIX ?= /usr/local
LIB    := target/release/libvine.a

.PHONY: all release demo test rust-test c-test cxx-test fortran-test examples header bench install clean

all: release

release:
	$(CARGO) build --release

header:
	VINE_UPDATE_HEADER=1 $(CARGO) build

demo: release
	$(MAKE) -C c-examples run

rust-test:
	$(CARGO) test --release

c-test: release
	$(MAKE) -C tests/capi run
	$(MAKE) -C tests/capi valgrind
	$(MAKE) -C tests/capi asan

cxx-test: release
	$(MAKE) -C tests/cxx run
	$(MAKE) -C tests/cxx valgrind

fortran-test: release
	$(MAKE) -C tests/fortran run

examples: release
	$(MAKE) -C c-examples run

test: rust-test c-test cxx-test fortran-test examples install-test

bench: release
	bash benches/run.sh

clean:
	$(CARGO) clean
	-$(MAKE) -C c-examples clean
	-$(MAKE) -C tests/capi clean
	-$(MAKE) -C tests/cxx clean
	-$(MAKE) -C tests/fortran clean

-include mk/install.mk
