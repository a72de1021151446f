/* Tests of core's growing text buffer: appends keep the text whole and
 * NUL-terminated across many reallocations, printf output longer than its
 * on-stack first try is written whole, and a size that would overflow marks
 * the buffer failed and drops every later append instead of writing. */
#include <criterion/criterion.h>

#include "tracemark/core.h"

#include <stdint.h>
#include <string.h>

Test(buffer, appends_grow_and_stay_terminated) {
    tm_buffer b = {0};
    for (int i = 0; i < 10000; i++) tm_buffer_puts(&b, "ab");
    tm_buffer_put(&b, "c", 1);
    cr_assert(!b.failed);
    cr_assert_eq(b.size, 20001);
    cr_assert_eq(strlen(b.data), 20001);
    cr_assert_eq(b.data[19999], 'b');
    cr_assert_eq(b.data[20000], 'c');
    tm_buffer_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.size, 0);
}

Test(buffer, printf_longer_than_its_first_try) {
    tm_buffer b = {0};
    char word[2000];
    memset(word, 'x', sizeof word - 1);
    word[sizeof word - 1] = '\0';
    tm_buffer_printf(&b, "%d:%s:%.3f", 42, word, 0.5);
    cr_assert(!b.failed);
    cr_assert_eq(b.size, 3 + 1999 + 6);
    cr_assert_eq(strncmp(b.data, "42:xxx", 6), 0);
    cr_assert_str_eq(b.data + b.size - 6, ":0.500");
    tm_buffer_free(&b);
}

Test(buffer, overflowing_size_fails_and_drops_later_appends) {
    tm_buffer b = {0};
    tm_buffer_puts(&b, "kept");
    size_t real = b.size;
    b.size = SIZE_MAX - 1; /* as if almost all of memory were in use */
    tm_buffer_put(&b, "xy", 2);
    cr_assert(b.failed);
    b.size = real;
    tm_buffer_puts(&b, "dropped");
    cr_assert_eq(b.size, real);
    cr_assert_str_eq(b.data, "kept");
    tm_buffer_free(&b);
}
