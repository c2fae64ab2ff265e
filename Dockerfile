# syntax=docker/dockerfile:1
# obscura-server: a static-ish release binary on a distroless base, running as a non-root user
# with no shell, no package manager and nothing to write outside its data directory.
#
#   docker build -t obscura-server .
#   docker run --read-only --cap-drop ALL -p 3000:3000 -p 9090:9090 -v obscura-data:/var/lib/obscura obscura-server

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds on one machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p obscura-server \
    && install -D target/release/obscura-server /out/obscura-server \
    && install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/obscura-server /usr/local/bin/obscura-server
# The embedded mode keeps SQLite, attachments and a generated JWT secret here: mount a volume.
COPY --from=build --chown=65532:65532 /out/data /var/lib/obscura
ENV OBSCURA_DATA_DIR=/var/lib/obscura
VOLUME ["/var/lib/obscura"]
USER 65532:65532
# 3000: API and WebSocket gateway. 9090: management (/livez, /readyz, /metrics); keep it private.
EXPOSE 3000 9090
ENTRYPOINT ["/usr/local/bin/obscura-server"]
