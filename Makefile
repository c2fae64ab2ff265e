# Everyday commands. The test services (PostgreSQL, Redis) come from .ci/services, which
# installs and starts throwaway instances when they are missing.

CARGO_TARGET_DIR ?= $(HOME)/.cache/obscura-target
export CARGO_TARGET_DIR

.PHONY: run build test test-scale-out lint fmt ci bench bench-micro image up down logs

run: ## The server in embedded mode (SQLite and files under ./obscura-data)
	cargo run --release -p obscura-server

build:
	cargo build --release --locked -p obscura-server

test: ## The README test command; set OBSCURA_TEST_POSTGRES_URL / OBSCURA_TEST_REDIS_URL for the full matrix
	cargo test --workspace

test-scale-out: ## Every test server on PostgreSQL + Redis + S3 (needs both URLs above)
	OBSCURA_TEST_MODE=scale-out cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

ci: ## What CI runs: lint, services, both test modes
	bash .ci/run

bench: ## The standard load set (obscura-bench e2e, backlog, idle) against a release server on loopback
	cargo build --release --locked -p obscura-server -p obscura-bench
	bash crates/obscura-bench/standard.sh

bench-micro: ## The workspace micro-benchmarks (cargo bench)
	cargo bench --workspace

image:
	docker build -t obscura-server:local .

up: ## PostgreSQL + Valkey + MinIO + the server (docker-compose.yml)
	docker compose up -d --build

down:
	docker compose down

logs:
	docker compose logs -f server
