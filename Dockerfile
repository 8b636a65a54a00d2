# groupguard: one container, SQLite in the /data volume by default.
# The release build here is the one CI runs: cargo build --release --locked --bin groupguard

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin groupguard

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 groupguard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin groupguard \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /src/target/release/groupguard /usr/local/bin/groupguard
COPY examples/templates /usr/share/groupguard/templates
USER 10001:10001
ENV GROUPGUARD_DATA_DIR=/data \
    GROUPGUARD_HTTP_LISTEN=0.0.0.0:8080 \
    GROUPGUARD_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["groupguard", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["groupguard"]
CMD ["run"]
