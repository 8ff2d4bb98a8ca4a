/* mail - the normalized message (see mail.h). */
#include "core/mail.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

struct mb_mail *mail_new(void)
{
    return xcalloc(1, sizeof(struct mb_mail));
}

static void address_clear(struct mb_address *a)
{
    free(a->name);
    free(a->address);
    a->name = a->address = NULL;
}

static void address_list_clear(struct mb_address_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        address_clear(&list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mail_free(struct mb_mail **mailp)
{
    struct mb_mail *m = *mailp;
    if (m == NULL)
        return;
    free(m->key);
    free(m->message_id);
    free(m->in_reply_to);
    strv_free(m->references, m->reference_count);
    free(m->subject);
    free(m->date);
    address_clear(&m->from);
    address_clear(&m->sender);
    address_list_clear(&m->reply_to);
    address_list_clear(&m->to);
    address_list_clear(&m->cc);
    free(m->text);
    free(m->html);
    for (size_t i = 0; i < m->attachment_count; i++) {
        struct mb_attachment *a = &m->attachments[i];
        free(a->filename);
        free(a->content_type);
        free(a->content_id);
        free(a->content_location);
        free(a->data);
    }
    free(m->attachments);
    strv_free(m->warnings, m->warning_count);
    free(m);
    *mailp = NULL;
}

void mail_add_warning(struct mb_mail *mail, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *w = xvasprintf(fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < mail->warning_count; i++) {
        if (strcmp(mail->warnings[i], w) == 0) {
            free(w);
            return;
        }
    }
    mail->warnings = xreallocarray(mail->warnings, mail->warning_count + 1, sizeof(char *));
    mail->warnings[mail->warning_count++] = w;
}

struct mb_attachment *mail_add_attachment(struct mb_mail *mail)
{
    mail->attachments =
        xreallocarray(mail->attachments, mail->attachment_count + 1, sizeof(struct mb_attachment));
    struct mb_attachment *a = &mail->attachments[mail->attachment_count++];
    memset(a, 0, sizeof(*a));
    return a;
}

void mail_add_reference(struct mb_mail *mail, const char *id)
{
    mail->references = xreallocarray(mail->references, mail->reference_count + 1, sizeof(char *));
    mail->references[mail->reference_count++] = xstrdup(id);
}

void address_list_add(struct mb_address_list *list, const char *name, const char *address)
{
    list->items = xreallocarray(list->items, list->count + 1, sizeof(struct mb_address));
    list->items[list->count].name = xstrdup(name);
    list->items[list->count].address = xstrdup(address);
    list->count++;
}

struct mb_attachment *mail_find_attachment_by_cid(const struct mb_mail *mail, const char *cid)
{
    for (size_t i = 0; i < mail->attachment_count; i++)
        if (mail->attachments[i].content_id != NULL && strcmp(mail->attachments[i].content_id, cid) == 0)
            return &mail->attachments[i];
    return NULL;
}
