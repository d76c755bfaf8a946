#!/usr/bin/env bash
# Builds the Python and JavaScript example plugins into target/plugins/:
#   py-validator.wasm  from python-validator/app.py  (componentize-py, world validator-plugin)
#   js-compute.wasm    from js-compute/app.js        (componentize-js, world compute-plugin)
#
# The toolchains are installed on first use into target/polyglot/ (a Python venv and an npm
# prefix) and reused afterwards. A component newer than its source, the WIT and the tool is
# not rebuilt; FORCE=1 rebuilds anyway. Runnable from any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tools="$root/target/polyglot"
out="$root/target/plugins"
wit="$root/wit"

PY_VERSION=0.25.1
JS_VERSION=0.23.0

# step "what" command...: says what it does, runs it, and says how long it took.
step() {
    local what="$1"; shift
    echo "==> $what" >&2
    local t0=$EPOCHREALTIME
    "$@"
    local t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "    done in %.1f s\n", b - a }' >&2
}

# fresh OUT INPUT...: whether OUT exists and is newer than every input.
fresh() {
    local o="$1"; shift
    [[ -z "${FORCE:-}" && -f "$o" ]] || return 1
    local i
    for i in "$@"; do
        [[ "$o" -nt "$i" ]] || return 1
    done
}

mkdir -p "$tools" "$out"
total0=$EPOCHREALTIME

# --- Python: componentize-py in a venv ---------------------------------------------------
venv="$tools/venv"
cpy="$venv/bin/componentize-py"
if [[ -x "$cpy" && "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null)" == "$PY_VERSION" ]]; then
    echo "==> componentize-py $PY_VERSION already installed in ${venv#"$root"/}" >&2
else
    [[ -x "$venv/bin/python" ]] || step "python3 -m venv ${venv#"$root"/}" "${PYTHON:-python3}" -m venv "$venv"
    step "pip install componentize-py==$PY_VERSION" \
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$PY_VERSION"
fi

# --- JavaScript: componentize-js under an npm prefix -------------------------------------
node_prefix="$tools/node"
cjs="$node_prefix/node_modules/.bin/componentize-js"
cjs_pkg="$node_prefix/node_modules/@bytecodealliance/componentize-js/package.json"
if [[ -x "$cjs" && -f "$cjs_pkg" && "$(node -p "require(process.argv[1]).version" "$cjs_pkg" 2>/dev/null)" == "$JS_VERSION" ]]; then
    echo "==> componentize-js $JS_VERSION already installed in ${node_prefix#"$root"/}" >&2
else
    mkdir -p "$node_prefix"
    step "npm install --prefix ${node_prefix#"$root"/} @bytecodealliance/componentize-js@$JS_VERSION" \
        npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/componentize-js@$JS_VERSION"
fi

# --- Builds ------------------------------------------------------------------------------
# Each build writes a temporary file first, so an interrupted build never leaves a truncated
# component behind.
wit_files=("$wit"/*.wit)

py_src="$here/python-validator/app.py"
py_out="$out/py-validator.wasm"
if fresh "$py_out" "$py_src" "${wit_files[@]}" "$cpy"; then
    echo "==> ${py_out#"$root"/} is up to date" >&2
else
    # componentize-py imports the app from the current directory and leaves a __pycache__
    # there, so it runs on a copy under target/ to keep the source tree clean.
    stage="$tools/build/python-validator"
    rm -rf "$stage" && mkdir -p "$stage" && cp "$py_src" "$stage/app.py"
    step "componentize-py -w validator-plugin: ${py_src#"$root"/} -> ${py_out#"$root"/}" \
        bash -c 'cd "$1" && "$2" -d "$3" -w validator-plugin componentize app -o "$4.tmp" && mv "$4.tmp" "$4"' \
        _ "$stage" "$cpy" "$wit" "$py_out"
fi

js_src="$here/js-compute/app.js"
js_out="$out/js-compute.wasm"
if fresh "$js_out" "$js_src" "${wit_files[@]}" "$cjs_pkg"; then
    echo "==> ${js_out#"$root"/} is up to date" >&2
else
    # -d: leave out WASI features the plugin does not use, so the component imports none of
    # them (the host grants none anyway). Run from the source's folder with a relative path:
    # componentize-js 0.23 mangles the module path when the current directory is "/".
    step "componentize-js -n compute-plugin: ${js_src#"$root"/} -> ${js_out#"$root"/}" \
        bash -c 'cd "$1" && "$2" app.js -w "$3" -n compute-plugin -d stdio random clocks http fetch-event -o "$4.tmp" && mv "$4.tmp" "$4"' \
        _ "$(dirname "$js_src")" "$cjs" "$wit" "$js_out"
fi

for f in "$py_out" "$js_out"; do
    printf '    %-40s %8d KiB\n' "${f#"$root"/}" $(( $(stat -c %s "$f") / 1024 )) >&2
done
awk -v a="$total0" -v b="$EPOCHREALTIME" 'BEGIN { printf "==> all done in %.1f s\n", b - a }' >&2
