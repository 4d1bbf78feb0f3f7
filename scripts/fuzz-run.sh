#!/usr/bin/env bash
# Runs each libFuzzer binary given as an argument for a while (`make
# fuzz-run`).  For fuzzer NAME the seeds are fuzz/corpus/NAME/; they are
# copied into a temporary working corpus, so a run never writes into the
# repository.  Crash, leak and timeout inputs are kept in
# $FUZZ_BUILD/artifacts/ (reproduce one with `$FUZZ_BUILD/NAME FILE`).
#
# Environment:
#   FUZZ_SECONDS        time per fuzzer (default 60)
#   FUZZ_TOTAL_SECONDS  if set: a total, split evenly between the fuzzers
#                       (each still gets at most FUZZ_SECONDS, at least 10)
#   FUZZ_TIMEOUT        per-input limit in seconds (default 10): an input
#                       that takes longer is a hang and fails the run
#   FUZZ_ARGS           more libFuzzer options
#
# Prints, per fuzzer, executions, coverage and new corpus entries; exit
# status 1 if any fuzzer found anything (crash, sanitizer report, leak,
# timeout, out-of-memory) or could not run.
set -u

seconds=${FUZZ_SECONDS:-60}
timeout_s=${FUZZ_TIMEOUT:-10}
build=${FUZZ_BUILD:-build-fuzz}
n=$#
if [ "$n" -eq 0 ]; then
	echo "fuzz-run: no fuzzers (fuzz/*.c)"
	exit 0
fi
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
	share=$((FUZZ_TOTAL_SECONDS / n))
	[ "$share" -lt 10 ] && share=10
	[ "$share" -lt "$seconds" ] && seconds=$share
fi

mkdir -p "$build/artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/uspair-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	corpus="$work/$name"
	mkdir -p "$corpus"
	seeds=0
	if [ -d "fuzz/corpus/$name" ]; then
		cp -r "fuzz/corpus/$name/." "$corpus/"
		seeds=$(find "fuzz/corpus/$name" -type f | wc -l)
	fi
	log="$work/$name.log"
	echo "fuzz $name: ${seconds}s, -timeout=$timeout_s, $seeds seed inputs"
	start=$(date +%s)
	# shellcheck disable=SC2086
	# UBSan findings abort (the recipe builds them recoverable), so that
	# libFuzzer keeps the input
	UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
		"$bin" -max_total_time="$seconds" -timeout="$timeout_s" -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$name-" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	newunits=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n1)
	units=$(find "$corpus" -type f | wc -l)
	printf '  %s executions in %ss, %s, corpus %s (%s new), peak RSS %s MB\n' \
		"${execs:-?}" "$((end - start))" "${cov:-cov ?}" "$units" "${newunits:-?}" "${rss:-?}"
	if [ "$rc" -ne 0 ] || grep -q -E '^(==[0-9]+==ERROR|SUMMARY: |.*runtime error:)' "$log"; then
		failed=$((failed + 1))
		echo "FAIL fuzz $name (exit $rc); findings:"
		ls -1 "$build/artifacts/$name-"* 2>/dev/null | sed 's/^/    /'
		# the inputs themselves (small), so that a CI finding can be
		# rebuilt with `base64 -d`
		for a in "$build/artifacts/$name-"*; do
			[ -f "$a" ] || continue
			[ "$(stat -c %s "$a")" -le 4096 ] || continue
			echo "    base64 of $(basename "$a"):"
			base64 -w 100 "$a" | sed 's/^/      /'
		done
		grep -n -E 'ERROR|SUMMARY|runtime error|Test unit written|FAIL|deadly signal|timeout after' "$log" |
			head -n 40 | sed 's/^/    /'
		# the first report whole, with its stack, so a finding in CI can
		# be read without the artifact
		sed -n '/^==[0-9]*==ERROR/,/^SUMMARY/p' "$log" | head -n 80 | sed 's/^/    /'
		# diff_fuzz: where the runs parted, and the shrunk reproducer
		grep -n -B3 -E 'divergence at step|first divergence|diverged in' "$log" |
			head -n 60 | sed 's/^/    /'
		sed -n '/^\/\* paste into/,/^} },/p' "$log" | head -n 40 | sed 's/^/    /'
		echo "    --- last 60 lines of the log:"
		tail -n 60 "$log" | sed 's/^/    /'
	else
		echo "PASS fuzz $name: no findings"
	fi
done
[ "$failed" -eq 0 ]
