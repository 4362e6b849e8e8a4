# make install PREFIX=/usr/local [DESTDIR=...]: libraries (static, and shared with a
# soname), headers, the Fortran module source, vine_worker, vine_status, vine_report,
# vine.pc and a CMake package.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
LIBDIR  := $(PREFIX)/lib
INCDIR  := $(PREFIX)/include
BINDIR  := $(PREFIX)/bin
# What a static link of libvine.a needs (rustc --print native-static-libs, but
# for -lgcc_s: cc links the unwinder itself, libgcc_eh.a in a -static link,
# where -lgcc_s has no archive to find).
STATIC_LIBS := -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: install install-test
install: release
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/vine $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR)
	install -m 644 target/release/libvine.a $(DESTDIR)$(LIBDIR)/libvine.a
	install -m 755 target/release/libvine.so $(DESTDIR)$(LIBDIR)/libvine.so.$(VERSION)
	ln -sf libvine.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libvine.so.$(MAJOR)
	ln -sf libvine.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libvine.so
	install -m 644 include/vine.h include/taskvine.h include/vine.hpp include/vine.f90 $(DESTDIR)$(INCDIR)/
	install -m 755 target/release/vine_worker $(DESTDIR)$(BINDIR)/vine_worker
	install -m 755 target/release/vine_status $(DESTDIR)$(BINDIR)/vine_status
	install -m 755 target/release/vine_report $(DESTDIR)$(BINDIR)/vine_report
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' \
	    mk/vine.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/vine.pc
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' \
	    mk/vineConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/vine/vineConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' \
	    mk/vineConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/vine/vineConfigVersion.cmake

install-test: release
	bash tests/install/run.sh
