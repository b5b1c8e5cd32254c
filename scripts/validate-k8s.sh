#!/usr/bin/env bash
# Checks the Kubernetes manifests in scripts/deploy/k8s/ against the Kubernetes API schema, strict
# (an unknown or misspelt field fails), with kubernetes-validate from PyPI at a pinned version,
# for a pinned Kubernetes version (k3s's; change K8S_VERSION to your cluster's). Also checks that
# scripts/deploy/shard-symbols.sh puts every symbol in exactly one shard. CI runs it (.ci/run).
# The validator is installed once into target/k8s-venv (python3 -m venv; python3-venv is
# installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
VALIDATOR_VERSION=1.37.0
K8S_VERSION=${K8S_VERSION:-1.34.0}
venv=target/k8s-venv

if [ ! -x "$venv/bin/kubernetes-validate" ] ||
    ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$VALIDATOR_VERSION"; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        sudo=()
        [ "$(id -u)" -ne 0 ] && sudo=(sudo)
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q "kubernetes-validate==$VALIDATOR_VERSION"
fi

"$venv/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" \
    scripts/deploy/k8s/*.yaml

# Every symbol in exactly one shard, for 1 to 5 shards of 7 symbols.
symbols=A1,B2,C3,D4,E5,F6,G7
for n in 1 2 3 4 5; do
    all=""
    for k in $(seq 0 $((n - 1))); do
        all="$all,$(scripts/deploy/shard-symbols.sh "$k" "$n" "$symbols")"
    done
    sorted=$(echo "${all#,}" | tr ',' '\n' | sort | paste -sd, -)
    if [ "$sorted" != "$symbols" ]; then
        echo "validate-k8s: $n shards of $symbols give $sorted" >&2
        exit 1
    fi
done
echo "validate-k8s: manifests valid for Kubernetes $K8S_VERSION (kubernetes-validate $VALIDATOR_VERSION, strict); shards partition the symbols"
