# netcost: multi-stage build of a small, non-root image for the node agent.
#
#   docker build -t ghcr.io/netcost/netcost:0.1.0 .
#
# The agent needs one capability, CAP_NET_ADMIN (conntrack dumps and events over netlink). It
# runs as uid 65532 and gets that capability from the binary's file capability (setcap
# cap_net_admin+ep); the DaemonSet drops every other capability and adds only NET_ADMIN to the
# bounding set. See deploy/helm/netcost and docs/install.md.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p netcost \
 && cp target/release/netcost /netcost

FROM debian:bookworm-slim
# ca-certificates: for TLS endpoints other than the API server (whose CA comes with the service
# account). setcap runs in this stage, not in a builder: a COPY --from between stages does not reliably
# keep the security.capability xattr (moby/moby#38132, moby/buildkit#2250), while a RUN layer
# does. libcap2-bin is removed again in the same layer.
#
# netcost-ui is the same binary without the file capability, for `netcost serve` in the chart's
# UI Deployment: the kernel refuses to execute a file whose capability is outside the container's
# bounding set, so serve, which needs no capability, would otherwise have to be given NET_ADMIN.
COPY --from=build /netcost /usr/local/bin/netcost
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && cp /usr/local/bin/netcost /usr/local/bin/netcost-ui \
 && setcap cap_net_admin+ep /usr/local/bin/netcost \
 && apt-get purge -y libcap2-bin \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 netcost \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin netcost \
 && mkdir -p /var/lib/netcost \
 && chown 65532:65532 /var/lib/netcost
USER 65532:65532
EXPOSE 3001
ENTRYPOINT ["/usr/local/bin/netcost"]
CMD ["agent"]
