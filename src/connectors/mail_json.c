/* mail_json - the normalized mail as JSON (see mail_json.h).
 *
 * Runs over whole mailboxes: objects are built once and serialized once,
 * keys added without copies (json_out). */
#include "connectors/mail_json.h"

#include "connectors/json_out.h"

/* string - S as a JSON string; NULL gives JSON null */
static json_object *string(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* array - an empty JSON array with room for N items */
static json_object *array(size_t n)
{
    return json_object_new_array_ext(n > 0 ? (int)n : 1);
}

/* strings - N strings as a JSON array */
static json_object *strings(char *const *v, size_t n)
{
    json_object *a = array(n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, string(v[i]));
    return a;
}

/* address - {"name", "address"}, absent parts as null */
static json_object *address(const struct mb_address *addr)
{
    json_object *o = json_object_new_object();
    json_out_add(o, "name", string(addr->name));
    json_out_add(o, "address", string(addr->address));
    return o;
}

/* address_or_null - null when the header was absent (no name, no address) */
static json_object *address_or_null(const struct mb_address *addr)
{
    return addr->name == NULL && addr->address == NULL ? NULL : address(addr);
}

/* address_list - a JSON array of addresses */
static json_object *address_list(const struct mb_address_list *list)
{
    json_object *a = array(list->count);
    for (size_t i = 0; i < list->count; i++)
        json_object_array_add(a, address(&list->items[i]));
    return a;
}

/* attachment - the metadata of one attachment (never its bytes) */
static json_object *attachment(const struct mb_attachment *att)
{
    json_object *o = json_object_new_object();
    json_out_add(o, "filename", json_object_new_string(att->filename ? att->filename : ""));
    json_out_add(o, "content_type",
                 json_object_new_string(att->content_type ? att->content_type : ""));
    json_out_add(o, "size", json_object_new_int64((int64_t)att->size));
    json_out_add(o, "sha256", json_object_new_string(att->sha256));
    json_out_add(o, "content_id", string(att->content_id));
    json_out_add(o, "content_location", string(att->content_location));
    json_out_add(o, "inline", json_object_new_boolean(att->inline_ref));
    return o;
}

char *mail_json_encode(const struct mb_mail *mail, const char *source)
{
    json_object *o = json_object_new_object();
    json_out_add(o, "source", string(source));
    json_out_add(o, "key", json_object_new_string(mail->key ? mail->key : ""));
    json_out_add(o, "message_id", string(mail->message_id));
    json_out_add(o, "in_reply_to", string(mail->in_reply_to));
    json_out_add(o, "references", strings(mail->references, mail->reference_count));
    json_out_add(o, "subject", json_object_new_string(mail->subject ? mail->subject : ""));
    json_out_add(o, "date", string(mail->date));
    json_out_add(o, "from", address_or_null(&mail->from));
    json_out_add(o, "sender", address_or_null(&mail->sender));
    json_out_add(o, "reply_to", address_list(&mail->reply_to));
    json_out_add(o, "to", address_list(&mail->to));
    json_out_add(o, "cc", address_list(&mail->cc));
    json_out_add(o, "text", json_object_new_string(mail->text ? mail->text : ""));
    json_out_add(o, "html", json_object_new_string(mail->html ? mail->html : ""));
    json_object *atts = array(mail->attachment_count);
    for (size_t i = 0; i < mail->attachment_count; i++)
        json_object_array_add(atts, attachment(&mail->attachments[i]));
    json_out_add(o, "attachments", atts);
    json_out_add(o, "warnings", strings(mail->warnings, mail->warning_count));
    json_out_add(o, "size", json_object_new_int64((int64_t)mail->raw_size));
    return json_out_string(o);
}

char *mail_json_error(const char *source, const char *status, const char *error)
{
    json_object *o = json_object_new_object();
    json_out_add(o, "source", string(source));
    json_out_add(o, "error", json_object_new_string(error));
    json_out_add(o, "status", json_object_new_string(status));
    return json_out_string(o);
}
