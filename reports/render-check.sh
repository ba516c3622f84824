#!/usr/bin/env bash
# Checks that a tcpbench HTML report renders in a browser: headless Chromium loads it, dumps
# the DOM it built, and every chart (<svg>) must hold a data line (a coloured <polyline> with
# points, or a coloured <circle> for a one-point series; the mesh is grey, legend glyphs are
# rectangles).
#
# usage: reports/render-check.sh REPORT.html [SCREENSHOT.png]
# exit:  0 every chart has data, 1 a chart has none (or no chart at all), 2 no chromium or bad use
# CHROMIUM=/path/to/chrome overrides the lookup on PATH.
set -euo pipefail

usage() {
	echo "usage: $0 REPORT.html [SCREENSHOT.png]" >&2
	exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
report=$1
shot=${2:-}
[[ -f $report ]] || {
	echo "render-check: no such file: $report" >&2
	exit 2
}

chromium=${CHROMIUM:-}
if [[ -z $chromium ]]; then
	for name in chromium chromium-browser google-chrome; do
		if command -v "$name" >/dev/null 2>&1; then
			chromium=$(command -v "$name")
			break
		fi
	done
fi
if [[ -z $chromium ]]; then
	echo "render-check: chromium not found on PATH (tried chromium, chromium-browser, google-chrome);" >&2
	echo "render-check: install it (apt-get install chromium) or set CHROMIUM=/path/to/chrome" >&2
	exit 2
fi

url="file://$(realpath "$report")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
	"--user-data-dir=$profile")

dom=$(timeout 120 "$chromium" "${flags[@]}" --dump-dom "$url" 2>/dev/null) || {
	echo "render-check: chromium failed to load $report" >&2
	exit 1
}

# One tag per line, then per <svg>: count data lines.
summary=$(printf '%s' "$dom" | tr '\n' ' ' | sed 's/</\n</g' | awk '
	function attr(tag, name,   re, m) {
		re = " " name "=\"[^\"]*\""
		if (match(tag, re)) { m = substr(tag, RSTART, RLENGTH); sub(/^ [^=]*="/, "", m); sub(/"$/, "", m); return tolower(m) }
		return ""
	}
	function grey(c) { return c !~ /^#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]$/ || (substr(c, 2, 2) == substr(c, 4, 2) && substr(c, 4, 2) == substr(c, 6, 2)) }
	/^<svg[ >]/ { n++; data[n] = 0; inside = 1; next }
	/^<\/svg>/ { inside = 0; next }
	inside && /^<polyline / {
		if (!grey(attr($0, "stroke")) && attr($0, "points") ~ /[0-9]/) data[n]++
	}
	inside && /^<circle / {
		if (!grey(attr($0, "fill")) || !grey(attr($0, "stroke"))) data[n]++
	}
	END {
		with = 0; empty = ""
		for (i = 1; i <= n; i++) if (data[i] > 0) with++; else empty = empty " " i
		printf "%d charts, %d with data", n, with
		if (empty != "") printf " (no data in chart%s)", empty
		printf "\n"
		exit (n > 0 && with == n) ? 0 : 1
	}
') && ok=0 || ok=$?
echo "$summary"

if [[ -n $shot ]]; then
	timeout 120 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1400,3000 \
		"--screenshot=$(realpath -m "$shot")" "$url" >/dev/null 2>&1 || {
		echo "render-check: chromium failed to take the screenshot" >&2
		exit 1
	}
	echo "screenshot: $shot"
fi
exit "$ok"
