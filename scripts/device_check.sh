#!/bin/bash
# Runs every test binary, the kernel benchmarks and the two applications on a borrowed GPU
# machine that has no Rust (BENCHMARKS.md, "On an NVIDIA H200", was made this way).
#
# Prepare here, from the repository's root (both folders are ignored through .git/info/exclude):
#   .gl/      the Vulkan loader and libglvnd as .deb files (`apt-get download libvulkan1
#             libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0`; NVIDIA's Vulkan driver
#             needs libGLdispatch from libglvnd0, the loader alone finds no adapter)
#   .devbin/  bins.tar.xz: the stripped test binaries (`cargo test --release --no-run` and
#             `cargo bench --no-run` list them) under t/, named without their hash, and the
#             train_siamese, stylize, classify, adapters and stylize_profile executables at its
#             top; orl_faces/: a copy of ../shared/data/orl_faces
# then run `bash scripts/device_check.sh` there with both folders carried. Results go to $OUT
# (or ./device-out): adapter.txt, summary.txt, tests.log, bench.txt, criterion.tar.gz,
# apps.txt. Every stage is cut to what is left of BUDGET seconds (default 500).
R=$PWD; SECONDS=0; BUDGET=${BUDGET:-500}; OUT=${OUT:-$R/device-out}; mkdir -p "$OUT"
cap() { local left=$(( BUDGET - SECONDS )); [ $left -lt $1 ] && echo $(( left > 5 ? left : 5 )) || echo $1; }
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
rm -rf /tmp/b; mkdir -p /tmp/b && tar -C /tmp/b -xJf .devbin/bins.tar.xz || { echo "no .devbin/bins.tar.xz"; exit 1; }
# The binaries were built in /work/main and find the data and assets through that path.
if [ "$R" != /work/main ]; then mkdir -p /work && ln -sfn "$R" /work/main; fi
for d in /work/shared/data "$R/../shared/data"; do mkdir -p "$d" && ln -sfn "$R/.devbin/orl_faces" "$d/orl_faces"; done
mkdir -p target/release && cp /tmp/b/train_siamese /tmp/b/stylize /tmp/b/classify target/release/
A=$OUT/adapter.txt; { nvidia-smi -L; /tmp/b/adapters --limits; } > "$A" 2>&1
if ! grep -qi 'nvidia.*vulkan' "$A"; then
  export VK_DRIVER_FILES=$(find / -xdev -name 'nvidia_icd*.json' 2>/dev/null | head -1)
  echo "== VK_DRIVER_FILES=$VK_DRIVER_FILES" >> "$A"; /tmp/b/adapters >> "$A" 2>&1
fi
head -3 "$A"
S=$OUT/summary.txt; L=$OUT/tests.log
cd /work/main
for t in $(ls /tmp/b/t | grep -v '^kernels$'); do
  ts=$(date +%s%N); echo "=== $t" >> "$L"
  timeout "$(cap 120)" /tmp/b/t/$t --test-threads=8 >> "$L" 2>&1; rc=$?
  echo "$t rc=$rc $(( ($(date +%s%N) - ts) / 1000000 )) ms $(grep '^test result' "$L" | tail -1)" >> "$S"
done
grep -E '^test .* FAILED|panicked' -A2 "$L" | head -40 >> "$S"
cat "$S"
rm -rf target/criterion
timeout "$(cap 80)" /tmp/b/t/kernels --bench --warm-up-time 1 --measurement-time 3 --output-format bencher > "$OUT/bench.txt" 2>&1
tar -czf "$OUT/criterion.tar.gz" target/criterion 2>/dev/null
grep bench: "$OUT/bench.txt"
{ ts=$(date +%s%N)
  timeout "$(cap 150)" /tmp/b/train_siamese train --data /work/shared/data/orl_faces --out /tmp/m.safetensors --holdout-identities 10
  echo "train rc=$? $(( ($(date +%s%N) - ts) / 1000000 )) ms"
  timeout "$(cap 60)" /tmp/b/stylize -o /tmp/stylized.png; echo "stylize rc=$?"
  timeout "$(cap 40)" /tmp/b/stylize_profile 256 20; } > "$OUT/apps.txt" 2>&1
tail -4 "$OUT/apps.txt"; echo "total ${SECONDS}s"
