# syntax=docker/dockerfile:1
# The fleet's load balancer: Debian 12's haproxy with deploy/haproxy.cfg. Build from the
# repository root: docker build -f deploy/haproxy.Dockerfile -t gatehouse-haproxy .
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy curl \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/haproxy.cfg /etc/haproxy/haproxy.cfg
# The package's own unprivileged account; port 8080 needs no privilege.
USER haproxy
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/haproxy/health"]
# -W: master-worker, -db: stay in the foreground, logs on stdout.
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
