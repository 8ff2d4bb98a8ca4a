/* registry - every connector type, and the vendor-neutral entry points
 * (open, close, post, post_many) the pipeline calls. Adding a vendor means one line
 * in the table below and its ops in vendors.h. */
#include "connectors/connector.h"

#include <stdlib.h>
#include <string.h>

#include "connectors/vendors.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

static const struct connector_ops *const registry[] = {
    &itx_connector_ops,
    NULL,
};

static const struct conf_key common_keys[] = {
    CONNECTOR_KEY_TYPE,
    CONF_KEY_END,
};

const struct connector_ops *const *connector_registry(void)
{
    return registry;
}

const struct connector_ops *connector_find_ops(const char *type)
{
    for (size_t i = 0; registry[i] != NULL; i++)
        if (strcmp(registry[i]->name, type) == 0)
            return registry[i];
    return NULL;
}

const struct conf_key *connector_common_keys(void)
{
    return common_keys;
}

/* known_types - "itx, superoffice, ..." for error messages (owned) */
static char *known_types(void)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; registry[i] != NULL; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", registry[i]->name);
    return buf_steal(&b);
}

enum mb_status connector_open(struct conf_section *sec, const struct connector_env *env,
                              struct connector **conn_r, struct mb_error *err)
{
    const char *type = conf_raw(sec, "type");
    const struct connector_ops *ops = type ? connector_find_ops(type) : NULL;
    if (ops == NULL) {
        char *known = known_types();
        if (type == NULL)
            mb_error_set(err, MB_CONFIG, "%s: [%s %s] needs key 'type' (known: %s)",
                         conf_section_where(sec), conf_section_kind(sec), conf_section_name(sec),
                         known);
        else
            mb_error_set(err, MB_CONFIG, "%s: unknown connector type '%.60s' (known: %s)",
                         conf_where(sec, "type"), type, known);
        free(known);
        return MB_CONFIG;
    }
    enum mb_status st = conf_bind(sec, ops->conf_keys, err);
    if (st != MB_OK)
        return st;
    struct connector *conn = NULL;
    st = ops->create(sec, env, &conn, err);
    if (st != MB_OK)
        return st;
    conn->ops = ops;
    conn->name = xstrdup(conf_section_name(sec));
    conn->env = env;
    *conn_r = conn;
    return MB_OK;
}

void connector_close(struct connector **connp)
{
    struct connector *conn = *connp;
    if (conn == NULL)
        return;
    free(conn->name);
    conn->name = NULL;
    conn->ops->destroy(conn);
    *connp = NULL;
}

enum mb_status connector_post(struct connector *conn, const struct ticket_request *req,
                              struct ticket_result *res, struct mb_error *err)
{
    if (req->thread->kind == THREAD_FOLLOWUP)
        return conn->ops->append(conn, req, res, err);
    return conn->ops->create_ticket(conn, req, res, err);
}

void connector_post_many(struct connector *conn, const struct ticket_request *reqs, size_t n,
                         struct ticket_result *results, enum mb_status *statuses,
                         struct mb_error *errs)
{
    if (conn->ops->post_many != NULL) {
        conn->ops->post_many(conn, reqs, n, results, statuses, errs);
        return;
    }
    for (size_t i = 0; i < n; i++)
        statuses[i] = connector_post(conn, &reqs[i], &results[i], &errs[i]);
}
