# spoor in a container: built from source in one stage, run from a small image in the next.
# The snippet and viewer are committed prebuilt (js-snippet/dist, replay-ui/dist), so the
# build needs nothing but Rust.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin spoor && cp target/release/spoor /usr/local/bin/spoor

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --create-home spoor
COPY --from=build /usr/local/bin/spoor /usr/local/bin/spoor
USER spoor
WORKDIR /data
VOLUME /data
ENV SPOOR_LISTEN=0.0.0.0:8080 \
    SPOOR_STORE=embedded:/data/spoor-data
EXPOSE 8080
ENTRYPOINT ["spoor"]
CMD ["serve"]
