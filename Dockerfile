# nodeexec: a static Go binary (the playbooks and roles are built into it) on a Debian runtime that has
# ansible-playbook and an SSH client. The steps mirror README.md and hack/deps.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/nodeexec ./cmd/nodeexec

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ansible-core ansible openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/nodeexec --uid 10001 nodeexec
COPY --from=build /out/nodeexec /usr/local/bin/nodeexec
USER nodeexec
WORKDIR /home/nodeexec
ENTRYPOINT ["/usr/local/bin/nodeexec"]
CMD ["help"]
