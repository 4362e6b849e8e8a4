#!/usr/bin/env bash
# Installs vine into a temporary prefix, then builds and runs a C program with
# pkg-config (shared and static) and a CMake project with find_package(vine).
set -uo pipefail
cd "$(dirname "$0")/../.."
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
passed=0 failed=0
check() { # name command...
    local name=$1; shift
    if "$@" > "$work/log" 2>&1; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; cat "$work/log"; fi
}
check "make install" make -s install PREFIX="$prefix"
for f in lib/libvine.a lib/libvine.so lib/pkgconfig/vine.pc lib/cmake/vine/vineConfig.cmake \
         include/vine.h include/vine.hpp include/vine.f90 bin/vine_worker bin/vine_status \
         bin/vine_report; do
    check "installed $f" test -e "$prefix/$f"
done
check "soname" sh -c "readelf -d '$prefix/lib/libvine.so' | grep -q 'SONAME.*libvine.so.0'"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "pkg-config shared build" sh -c "cc tests/install/hello.c \$(pkg-config --cflags --libs vine) -o '$work/hello_pc'"
check "pkg-config shared run" env LD_LIBRARY_PATH="$prefix/lib" "$work/hello_pc"
check "pkg-config static build" sh -c "cc -static-libgcc tests/install/hello.c \$(pkg-config --cflags vine) \
    \$(pkg-config --variable=libdir vine)/libvine.a \$(pkg-config --static --libs-only-l vine | sed 's/-lvine//') -o '$work/hello_static'"
check "pkg-config static run" "$work/hello_static"
check "static binary needs no libvine.so" sh -c "! ldd '$work/hello_static' | grep -q libvine"
# A wholly static program, linked with what pkg-config says (glibc warns that
# name lookups in it need the shared libraries at run time).
check "pkg-config -static build" sh -c "cc -static tests/install/hello.c \$(pkg-config --cflags vine) \
    \$(pkg-config --variable=libdir vine)/libvine.a \$(pkg-config --static --libs-only-l vine | sed 's/-lvine//') -o '$work/hello_all_static'"
check "pkg-config -static run" "$work/hello_all_static"
if command -v cmake > /dev/null; then
    check "cmake configure" cmake -S tests/install -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix"
    check "cmake build" cmake --build "$work/cmake"
    check "cmake shared run" "$work/cmake/hello_shared"
    check "cmake static run" "$work/cmake/hello_static"
else
    echo "SKIPPED: the CMake part (cmake not found)"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
