/* vendors - the ops table of every vendor file, for the registry only.
 *
 * The pipeline never includes this: it finds vendors by their `type`
 * through connector_find_ops(). */
#ifndef MB_CONNECTORS_VENDORS_H
#define MB_CONNECTORS_VENDORS_H

#include "connectors/connector.h"

extern const struct connector_ops itx_connector_ops; /* itx.c */

#endif
