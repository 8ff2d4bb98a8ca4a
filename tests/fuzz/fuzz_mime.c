/* fuzz_mime - libFuzzer target for the mime module: any bytes through
 * mime_parse() with the default limits, then the HTML helpers over what it
 * produced. A crash, a sanitizer report, a leak or a hang is a bug; an
 * MB_PERM answer is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* drop_cid - mime_ref_map_fn replacing every cid: reference */
static const char *drop_cid(void *ctx, const char *ref)
{
    (void)ctx;
    return strncmp(ref, "cid:", 4) == 0 ? "files[0]" : NULL;
}

/* LLVMFuzzerInitialize - gmime and libxml2 once for the whole run */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mime_global_init();
    return 0;
}

/* LLVMFuzzerTestOneInput - one input through the parser and HTML helpers */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_limits limits;
    mime_limits_default(&limits);
    struct mb_mail *mail = NULL;
    struct mb_error err;
    if (mime_parse(data, size, &limits, &mail, &err) != MB_OK)
        return 0;
    char *html = mime_html_rewrite_refs(mail->html, drop_cid, NULL);
    char *text = mime_html_to_text(html, 4096);
    char *back = mime_text_to_html(text);
    free(back);
    free(text);
    free(html);
    mail_free(&mail);
    return 0;
}
