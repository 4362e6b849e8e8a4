# vine: build, demo, test, benchmark, install.
#   make demo     build the library and run the example workflows on local workers
#   make test     run every test (Rust, C harness + valgrind + ASan/UBSan, C++/Fortran, examples, install;
#                 the Slurm suite when a Slurm works here: make slurm-up)
#   make bench    run the benchmarks side by side with their peers
#   make fuzz     fuzz the frame decoder and the manager's handshake for FUZZ_SECONDS each
#   make install PREFIX=/usr/local
#   make header   regenerate include/vine.h after changing the C API

CARGO  ?= cargo
PREFIX ?= /usr/local
LIB    := target/release/libvine.a

.PHONY: all release demo test slurm-up slurm-down rust-test c-test cxx-test fortran-test taskvine-test examples header bench fuzz install clean

all: release

release:
	$(CARGO) build --release

header:
	VINE_UPDATE_HEADER=1 $(CARGO) build

demo: release
	$(MAKE) -C c-examples run

rust-test:
	$(CARGO) test --release
	@sinfo --noheader >/dev/null 2>&1 || echo "*** SKIPPED: the Slurm suite (tests/factory_slurm.rs) found no working Slurm; 'make slurm-up' (root) starts a single-node one ***"

# A single-node Slurm on this machine for the Slurm suite (root; installs
# slurm-wlm and munge if missing).
slurm-up:
	bash .ci/slurm.sh up

slurm-down:
	bash .ci/slurm.sh down

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

# TaskVine-style C programs through include/taskvine.h, on local threads and on
# remote workers, and one of them under valgrind.
taskvine-test: release
	$(MAKE) -C tests/taskvine run
	$(MAKE) -C tests/taskvine valgrind

test: rust-test c-test cxx-test fortran-test taskvine-test examples install-test

bench: release
	bash benches/run.sh

# libFuzzer through `cargo fuzz` on a nightly toolchain, over the committed corpus
# (tests/fuzz/corpus; new finds go to fuzz/corpus). Without it, the bounded
# random-input test of tests/fuzz.rs runs for the same time instead.
FUZZ_SECONDS ?= 60
fuzz:
	@if cargo +nightly fuzz --version >/dev/null 2>&1; then \
		for t in frame handshake; do \
			mkdir -p fuzz/corpus/$$t && \
			cargo +nightly fuzz run --release $$t fuzz/corpus/$$t tests/fuzz/corpus/$$t \
				-- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
		done; \
	else \
		echo "no cargo fuzz on a nightly toolchain: running tests/fuzz.rs for $(FUZZ_SECONDS) s"; \
		VINE_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release --test fuzz; \
	fi

clean:
	$(CARGO) clean
	-$(MAKE) -C c-examples clean
	-$(MAKE) -C tests/capi clean
	-$(MAKE) -C tests/cxx clean
	-$(MAKE) -C tests/fortran clean
	-$(MAKE) -C tests/taskvine clean

# An HTML page about a run from its transactions log: make report RUN=path/to/rundir
.PHONY: report
report:
	$(CARGO) build --release --bin vine_report
	target/release/vine_report $(RUN)

-include mk/install.mk
