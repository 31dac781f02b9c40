# Multi-stage build: compile both binaries in the Rust image, ship them on Debian slim.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins --examples \
 && cp target/release/beat target/release/worker /usr/local/bin/ \
 && cp target/release/examples/sink /usr/local/bin/drumbeat-sink

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/beat /usr/local/bin/worker /usr/local/bin/drumbeat-sink /usr/local/bin/
COPY example/ /etc/drumbeat/
ENV DRUMBEAT_CONFIG=/etc/drumbeat/drumbeat.toml
USER nobody
