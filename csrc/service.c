/* service.c - the libwebsockets service thread: creates, runs and destroys its own context. */
#include "service.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gql_command.h"
#include "gql_message.h"
#include "gql_protocol.h"
#include "http_protocol.h"
#include "log.h"
#include "msgbuf.h"
#include "pmd_extension.h"
#include "recovery.h"
#include "ticker.h"
#include "timeutil.h"

/* Zero: lws schedules no per-connection ping or hangup timers (see create_context). */
static const lws_retry_bo_t no_validity_timers = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

/* Large enough that a snapshot goes to the kernel in one send(), without lws copying it. */
#define TX_PACKET_SIZE (256 * 1024)
/* The handshake (and, later, the TLS accept) must complete within this. */
#define HANDSHAKE_TIMEOUT_S 10

/* While accept() fails (no descriptor left), the listening socket is paused for this long,
 * doubling up to the maximum; a successful accept starts over.  One line per period at most. */
#define ACCEPT_BACKOFF_MIN_US (50 * LWS_US_PER_MS)
#define ACCEPT_BACKOFF_MAX_US (2 * LWS_US_PER_SEC)
#define ACCEPT_REPORT_PERIOD_MS 10000
/* One keepalive scan a second covers every connection (session_keepalive). */
#define KEEPALIVE_SCAN_US (1 * LWS_US_PER_SEC)
/* stop() must finish promptly even when clients do not read their close frame. */
#define STOP_DEADLINE_US (1500 * LWS_US_PER_MS)

/* Two WebSocket protocols with one callback: the plain one (also for upgrades that name no
 * subprotocol, and for plain HTTP, which is handed to http_protocol.c: http_protocol.h says why
 * it is not a protocol of its own), and GraphQL's, whose connections ws_protocol.c hands to
 * gql_protocol.c. */
static const struct lws_protocols protocols[] = {
    {
        .name = WS_PROTOCOL_NAME,
        .callback = ws_protocol_callback,
        .per_session_data_size = 0, /* set from ws_session_size at runtime, see below */
        .rx_buffer_size = 0,
        .tx_packet_size = TX_PACKET_SIZE,
    },
    {
        .name = GQL_PROTOCOL_NAME,
        .callback = ws_protocol_callback,
        .per_session_data_size = 0,
        .rx_buffer_size = 0,
        .tx_packet_size = TX_PACKET_SIZE,
    },
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void set_state(struct service *svc, enum service_state state)
{
    pthread_mutex_lock(&svc->lock);
    svc->state = state;
    pthread_cond_broadcast(&svc->state_changed);
    pthread_mutex_unlock(&svc->lock);
}

/* lws loads its libev glue from this file at context creation (LWS_WITH_EVLIB_PLUGINS). */
#define LIBEV_PLUGIN LWS_INSTALL_LIBDIR "/libwebsockets-evlib_ev.so"

/* lws's own loop calls poll(2) over every descriptor on each wake-up: O(N) per wake-up, the
 * largest cost of fan-out at 10,000 clients.  A libev loop on epoll costs O(1) per ready socket.
 * The loop is ours (a "foreign" loop to lws) so that lws installs no SIGINT watcher in the
 * host process.  Returns NULL when poll was asked for or libev is unusable. */
static struct ev_loop *create_ev_loop(struct service *svc)
{
    if (svc->cfg.use_poll)
        return NULL;
    if (access(LIBEV_PLUGIN, R_OK) != 0) {
        sb_log(svc->events, SB_WARNING,
               "%s not found; using lws's poll(2) loop, which slows fan-out above ~1,000 "
               "clients (Debian/Ubuntu: apt-get install libwebsockets-evlib-ev)", LIBEV_PLUGIN);
        return NULL;
    }
    /* NOSIGMASK: the signal mask belongs to the host process. */
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!loop)
        sb_log(svc->events, SB_WARNING, "libev could not create an epoll loop; using poll(2)");
    return loop;
}

/* Create the context and the listening vhost.  Returns 0, or -1 with error/bind_errno set. */
static int create_context(struct service *svc)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1];

    memset(&info, 0, sizeof(info));
    /* No LWS_SERVER_OPTION_VALIDATE_UTF8: lws would check compressed payloads, so ws_protocol.c
     * checks each whole text message itself, after inflating it. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    svc->ev_loop = create_ev_loop(svc);
    if (svc->ev_loop) {
        foreign_loops[0] = svc->ev_loop;
        info.foreign_loops = foreign_loops;
        info.options |= LWS_SERVER_OPTION_LIBEV;
    }
    if (svc->cfg.ssl_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (svc->cfg.disable_ipv6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.user = svc;
    info.timeout_secs = HANDSHAKE_TIMEOUT_S;
    info.gid = -1;
    info.uid = -1;

    svc->ctx = lws_create_context(&info);
    if (!svc->ctx) {
        snprintf(svc->error, sizeof(svc->error), "libwebsockets could not create a context");
        return -1;
    }

    info.port = svc->cfg.port;
    info.iface = svc->cfg.iface;
    info.protocols = svc->protocols;
    info.vhost_name = "default";
    /* lws's own validity timers are off: lws 4.1.6 keeps one per connection in a sorted list
     * and re-inserts it, O(N) each time, on every pong, which stalled fan-out at 20,000
     * clients.  this file runs the keepalive with one server-wide timer instead (keepalive_scan). */
    info.retry_and_idle_policy = &no_validity_timers;
    info.extensions = pmd_extensions; /* ours, not lws's: pmd_extension.h says why */
    if (svc->cfg.ssl_cert) {
        info.ssl_cert_filepath = svc->cfg.ssl_cert;
        info.ssl_private_key_filepath = svc->cfg.ssl_key;
        info.alpn = "http/1.1"; /* WebSocket over HTTP/2 is not offered */
    }
    sb_log_take_bind_errno();
    errno = 0;
    svc->vhost = lws_create_vhost(svc->ctx, &info);
    if (!svc->vhost) {
        int logged = sb_log_take_bind_errno();
        if (!logged && svc->cfg.ssl_cert) {
            snprintf(svc->error, sizeof(svc->error),
                     "TLS setup failed: libwebsockets rejected certificate %s or key %s",
                     svc->cfg.ssl_cert, svc->cfg.ssl_key);
            return -1;
        }
        int e = logged ? logged : errno;
        svc->bind_errno = e ? e : EADDRNOTAVAIL;
        snprintf(svc->error, sizeof(svc->error), "cannot listen on %s port %d: %s",
                 svc->cfg.iface ? svc->cfg.iface : "all interfaces", svc->cfg.port,
                 strerror(svc->bind_errno));
        return -1;
    }
    return 0;
}

static void destroy_context(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    svc->alive = 0; /* nobody may call lws_cancel_service from now on */
    pthread_mutex_unlock(&svc->lock);
    if (svc->ctx)
        lws_context_destroy(svc->ctx); /* stops every watcher it put on ev_loop */
    svc->ctx = NULL;
    svc->vhost = NULL;
    if (svc->ev_loop)
        ev_loop_destroy(svc->ev_loop);
    svc->ev_loop = NULL;
}

/* Whether fd is a listening TCP socket bound to port. */
static int listens_on(int fd, int port)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) != 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&sa)->sin_port) == port;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port) == port;
    return 0;
}

/* lws 4.1.6 offers no getter for a vhost's listening wsi.  Find the descriptor among the open
 * ones (never past lws's own table, which wsi_from_fd does not bound-check), then its wsi. */
static struct lws *find_listen_wsi(struct service *svc)
{
    struct lws *found = NULL;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return NULL;
    for (struct dirent *e; !found && (e = readdir(dir));) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dirfd(dir))
            continue;
        if (listens_on((int)fd, svc->bound_port))
            found = wsi_from_fd(svc->ctx, (int)fd);
    }
    closedir(dir);
    return found;
}

static void report_accept_failures(struct service *svc, int err)
{
    int64_t now = mono_us() / 1000;
    if (svc->accept_report_ms && now - svc->accept_report_ms < ACCEPT_REPORT_PERIOD_MS)
        return;
    sb_log(svc->events, SB_ERROR,
           "cannot accept connections: %s; pausing new connections (%llu failed accepts since "
           "the last report; raise the open-file limit or lower max_clients)",
           strerror(err), (unsigned long long)svc->accept_unreported);
    svc->accept_unreported = 0;
    svc->accept_report_ms = now;
}

static void accept_resume(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, accept_retry);
    svc->accept_paused = 0;
    if (svc->listen_wsi && !svc->stopping)
        lws_rx_flow_control(svc->listen_wsi, 1);
}

void service_accept_failed(struct service *svc, int err)
{
    svc->counters.accept_failures++;
    svc->accept_unreported++;
    report_accept_failures(svc, err);
    /* A pending connection is the cheapest descriptor to give back; with one given back, the
     * next accept() can succeed soon, so the back-off starts over. */
    if (pending_drop_oldest(svc))
        svc->accept_backoff_us = ACCEPT_BACKOFF_MIN_US;
    if (!svc->listen_wsi)
        return;
    /* Without the pause, lws would call accept() again at once, forever: the connection stays
     * in the kernel's queue and the listening socket stays readable.  lws itself turns POLLIN
     * back on whenever a connection closes (its accept modulation) without telling its flow
     * control, which then believes it is still off: allow, then pause, to really turn it off. */
    lws_rx_flow_control(svc->listen_wsi, 1);
    lws_rx_flow_control(svc->listen_wsi, 0);
    if (svc->accept_paused)
        return; /* the retry is scheduled already */
    svc->accept_paused = 1;
    if (!svc->accept_backoff_us)
        svc->accept_backoff_us = ACCEPT_BACKOFF_MIN_US;
    lws_sul_schedule(svc->ctx, 0, &svc->accept_retry, accept_resume, svc->accept_backoff_us);
    svc->accept_backoff_us *= 2;
    if (svc->accept_backoff_us > ACCEPT_BACKOFF_MAX_US)
        svc->accept_backoff_us = ACCEPT_BACKOFF_MAX_US;
}

void service_accept_ok(struct service *svc)
{
    svc->accept_backoff_us = 0;
}

/* lws reports a failed accept() only in its log (see log.c), on this thread. */
static void on_accept_failed(void *arg, int err)
{
    service_accept_failed(arg, err);
}

/* ---- keepalive: one timer for every connection ---- */

static void keepalive_scan(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, keepalive);
    int64_t now = mono_us() / 1000;

    for (struct session *s = svc->sessions, *next; s; s = next) {
        next = session_next_rw(s);
        session_keepalive(s, now);
    }
    lws_sul_schedule(svc->ctx, 0, &svc->keepalive, keepalive_scan, KEEPALIVE_SCAN_US);
}

static void keepalive_start(struct service *svc)
{
    lws_sul_schedule(svc->ctx, 0, &svc->keepalive, keepalive_scan, KEEPALIVE_SCAN_US);
}

/* ---- shutdown and the mailbox ---- */

static void stop_deadline_reached(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, stop_deadline);
    if (svc->n_connections)
        sb_log(svc->events, SB_WARNING, "%zu clients did not close in time; dropping them",
               svc->n_connections);
    svc->leave_loop = 1;
}

static void begin_shutdown(struct service *svc)
{
    svc->stopping = 1;
    lws_sul_cancel(&svc->keepalive);
    for (struct session *s = svc->sessions; s; s = session_next_rw(s))
        session_close(s, SB_CLOSE_SHUTDOWN);
    if (svc->n_connections == 0)
        svc->leave_loop = 1;
    else
        lws_sul_schedule(svc->ctx, 0, &svc->stop_deadline, stop_deadline_reached,
                         STOP_DEADLINE_US);
}

void service_drain_mailbox(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    struct snapshot *s = svc->pending;
    svc->pending = NULL;
    int stop = svc->stop_requested;
    struct gql_command *commands = svc->commands;
    svc->commands = svc->commands_tail = NULL;
    pthread_mutex_unlock(&svc->lock);

    /* The append goes out before this server's own fan-out, which takes milliseconds at
     * thousands of clients: the edges' clients then get the tick about when these do. */
    if (s && svc->cfg.role == SB_ROLE_PUBLISHER) {
        redis_publisher_push(&svc->publisher, s);
        redis_publisher_flush(&svc->publisher);
    }
    if (s)
        svc->counters.conflated_updates +=
            fanout_publish(&svc->fan, s, svc->sessions, !svc->stopping);
    /* After the tick: a burst of new GraphQL operations never delays the live ones' update. */
    while (commands) {
        struct gql_command *cmd = commands;
        commands = cmd->next;
        if (cmd->kind == GQC_HTTP_REPLY)
            http_protocol_reply(svc, cmd);
        else
            gql_apply_command(svc, cmd);
    }
    if (stop && !svc->stopping)
        begin_shutdown(svc);
}

void service_connection_closed(struct service *svc)
{
    if (svc->stopping && svc->n_connections == 0)
        svc->leave_loop = 1;
}

/* One pass of whichever loop runs the context: wait for events, then serve them. */
static int service_once(struct service *svc)
{
    if (svc->ev_loop) {
        ev_run(svc->ev_loop, EVRUN_ONCE);
        return 0;
    }
    return lws_service(svc->ctx, 0);
}

/* An edge's state from Redis, in place of a tick: the same path a ticker's snapshot takes
 * (recovery store, latest, fan-out, the asyncio side's EV_SNAPSHOT), with the publisher's
 * numbering.  Takes over the reference. */
static void deliver_from_redis(void *ctx, struct snapshot *s)
{
    struct service *svc = ctx;
    recovery_retain(svc->ticker->recovery, s);
    ticker_set_latest(svc->ticker, s);
    svc->counters.conflated_updates += fanout_publish(&svc->fan, s, svc->sessions, !svc->stopping);
    evq_post(svc->events, EV_SNAPSHOT, 0, s->seq, NULL);
}

/* The publisher took over the stream: the ticker numbers on from it, starting now. */
static void adopt_numbering(void *ctx, const char *epoch, uint64_t seq)
{
    struct service *svc = ctx;
    ticker_adopt(svc->ticker, epoch, seq);
    ticker_request_tick(svc->ticker);
}

/* Start the Redis side of the role on the loop; -1 when out of memory. */
static int redis_role_start(struct service *svc)
{
    const struct service_config *c = &svc->cfg;
    if (c->role == SB_ROLE_PUBLISHER)
        return redis_publisher_start(&svc->publisher, svc->ev_loop, &c->redis, c->redis_prefix,
                                     c->redis_maxlen, svc->ticker->recovery, svc->ticker->history,
                                     adopt_numbering,
                                     svc, svc->events);
    if (c->role == SB_ROLE_EDGE)
        return redis_edge_start(&svc->edge, svc->ev_loop, &c->redis, c->redis_prefix,
                                svc->ticker->history, deliver_from_redis, svc, svc->events);
    return 0;
}

int service_redis_status(const struct service *svc, struct redis_status *out)
{
    if (svc->cfg.role == SB_ROLE_PUBLISHER)
        redis_publisher_status(&svc->publisher, out);
    else if (svc->cfg.role == SB_ROLE_EDGE)
        redis_edge_status(&svc->edge, out);
    else
        return -1;
    return 0;
}

static void *service_main(void *arg)
{
    struct service *svc = arg;

    sb_log_route_lws(svc->events); /* this server's context logs on this thread only */
    memcpy(svc->protocols, protocols, sizeof(svc->protocols));
    svc->protocols[0].per_session_data_size = ws_session_size;
    svc->protocols[1].per_session_data_size = ws_session_size;

    if (create_context(svc) < 0 || (svc->cfg.role != SB_ROLE_STANDALONE && !svc->ev_loop)) {
        if (svc->ctx && !svc->ev_loop)
            snprintf(svc->error, sizeof(svc->error),
                     "role publisher and edge need the libev loop (unset SESSION_BUDDY_EVENT_LOOP)");
        destroy_context(svc);
        sb_log_route_lws(NULL);
        set_state(svc, SVC_FAILED);
        return NULL;
    }
    pthread_mutex_lock(&svc->lock);
    svc->alive = 1;
    svc->bound_port = lws_get_vhost_listen_port(svc->vhost);
    pthread_mutex_unlock(&svc->lock);
    svc->listen_wsi = find_listen_wsi(svc);
    if (!svc->listen_wsi)
        sb_log(svc->events, SB_WARNING, "listening socket not found: accept() failures will not "
               "pause accepting");
    sb_log_set_accept_hook(on_accept_failed, svc);
    if (redis_role_start(svc) < 0)
        sb_log(svc->events, SB_ERROR, "out of memory starting the Redis link: role %s inactive",
               svc->cfg.role == SB_ROLE_EDGE ? "edge" : "publisher");
    sb_log(svc->events, SB_DEBUG, "event loop: %s", svc->ev_loop ? "libev (epoll)" : "poll(2)");
    set_state(svc, SVC_LISTENING);
    keepalive_start(svc);
    pending_start(svc);
    /* Under libev, lws arms its timer only after it served an event, so wake it once now; this
     * also serves a stop asked before we were alive to be woken. */
    lws_cancel_service(svc->ctx);

    while (!svc->leave_loop) {
        if (service_once(svc) < 0) {
            sb_log(svc->events, SB_ERROR, "libwebsockets service loop failed; stopping");
            break;
        }
    }
    lws_sul_cancel(&svc->stop_deadline);
    lws_sul_cancel(&svc->keepalive);
    lws_sul_cancel(&svc->accept_retry);
    pending_stop(svc);
    redis_publisher_stop(&svc->publisher); /* before the loop its watchers are on goes */
    redis_edge_stop(&svc->edge);
    sb_log_set_accept_hook(NULL, NULL);
    destroy_context(svc);
    sb_log_route_lws(NULL);
    fanout_release(&svc->fan);
    set_state(svc, SVC_STOPPED);
    evq_post(svc->events, EV_STOPPED, 0, 0, NULL);
    return NULL;
}

void service_config_free(struct service_config *cfg)
{
    free(cfg->iface);
    free(cfg->static_dir);
    if (cfg->jwt_secret) /* do not leave the secret behind in freed memory */
        memset(cfg->jwt_secret, 0, cfg->jwt_secret_len);
    free(cfg->jwt_secret);
    for (size_t i = 0; i < cfg->n_allowed_origins; i++)
        free(cfg->allowed_origins[i]);
    free(cfg->allowed_origins);
    free(cfg->ssl_cert);
    free(cfg->ssl_key);
    for (size_t i = 0; i < cfg->n_allowed_hosts; i++)
        free(cfg->allowed_hosts[i]);
    free(cfg->allowed_hosts);
    redis_target_free(&cfg->redis);
    free(cfg->redis_prefix);
    free(cfg->graphql_schema);
    memset(cfg, 0, sizeof(*cfg));
}

int service_start(struct service *svc, const struct service_config *cfg,
                  struct event_queue *events, struct ticker *ticker,
                  struct webhook_stats *webhooks)
{
    memset(svc, 0, sizeof(*svc));
    svc->cfg = *cfg;
    svc->events = events;
    svc->ticker = ticker;
    svc->webhooks = webhooks;
    svc->fan.recovery = ticker->recovery;
    svc->fan.catch_up = cfg->role == SB_ROLE_EDGE;
    svc->started_ms = now_unix_ms();
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->state_changed, NULL);
    svc->state = SVC_STARTING;
    if (static_files_load(&svc->files, svc->cfg.static_dir) < 0) {
        snprintf(svc->error, sizeof(svc->error), "out of memory loading %s", svc->cfg.static_dir);
        svc->state = SVC_FAILED;
        return -1;
    }

    int rc = pthread_create(&svc->thread, NULL, service_main, svc);
    if (rc) {
        snprintf(svc->error, sizeof(svc->error), "cannot start the service thread: %s",
                 strerror(rc));
        svc->state = SVC_FAILED;
        return -1;
    }
    svc->thread_started = 1;
    /* Named for `top -H`, perf and the fan-out benchmark's per-thread CPU split. */
    pthread_setname_np(svc->thread, "sb-service");

    pthread_mutex_lock(&svc->lock);
    while (svc->state == SVC_STARTING)
        pthread_cond_wait(&svc->state_changed, &svc->lock);
    int ok = svc->state == SVC_LISTENING;
    pthread_mutex_unlock(&svc->lock);
    if (!ok) {
        pthread_join(svc->thread, NULL);
        svc->thread_started = 0;
        return -1;
    }
    return 0;
}

void service_publish(struct service *svc, struct snapshot *s)
{
    pthread_mutex_lock(&svc->lock);
    struct snapshot *dropped = svc->pending;
    svc->pending = s;
    if (svc->alive)
        lws_cancel_service(svc->ctx);
    pthread_mutex_unlock(&svc->lock);
    snapshot_unref(dropped);
}

int service_post_command(struct service *svc, struct gql_command *cmd)
{
    pthread_mutex_lock(&svc->lock);
    int alive = svc->alive && !svc->stop_requested;
    if (alive) {
        cmd->next = NULL;
        if (svc->commands_tail)
            svc->commands_tail->next = cmd;
        else
            svc->commands = cmd;
        svc->commands_tail = cmd;
        lws_cancel_service(svc->ctx);
    }
    pthread_mutex_unlock(&svc->lock);
    if (!alive) {
        gql_command_free(cmd);
        return -1;
    }
    return 0;
}

void service_request_stop(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    svc->stop_requested = 1;
    if (svc->alive)
        lws_cancel_service(svc->ctx);
    pthread_mutex_unlock(&svc->lock);
}

void service_destroy(struct service *svc)
{
    if (svc->thread_started) {
        service_request_stop(svc);
        pthread_join(svc->thread, NULL);
        svc->thread_started = 0;
    }
    snapshot_unref(svc->pending);
    svc->pending = NULL;
    while (svc->commands) { /* posted after the thread's last look */
        struct gql_command *cmd = svc->commands;
        svc->commands = cmd->next;
        gql_command_free(cmd);
    }
    svc->commands_tail = NULL;
    msgbuf_unref(svc->gql_frame);
    svc->gql_frame = NULL;
    id_map_free(&svc->sessions_by_id);
    service_config_free(&svc->cfg);
    static_files_free(&svc->files);
    pthread_cond_destroy(&svc->state_changed);
    pthread_mutex_destroy(&svc->lock);
}
