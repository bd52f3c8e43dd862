# soundlake: the one binary and the shipped definitions.
#   docker build -t soundlake .
#   docker run --rm soundlake demo
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin soundlake

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/soundlake /usr/local/bin/soundlake
WORKDIR /app
COPY artists.txt ./
COPY bronze ./bronze
COPY silver ./silver
COPY gold ./gold
COPY pipelines ./pipelines
# The daemon's status page, /metrics and /healthz, reachable from other containers.
ENV SOUNDLAKE__DAEMON__LISTEN=0.0.0.0:9187
EXPOSE 9187
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s \
  CMD curl -fsS http://127.0.0.1:9187/healthz || exit 1
ENTRYPOINT ["soundlake"]
CMD ["daemon"]
