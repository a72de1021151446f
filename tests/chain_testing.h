/* The sampler chain tm_sampler_chain_build makes, assembled stage by stage
 * without the pre-truncation stage it puts before a logit bias: the
 * reference the pre-truncation tests (test_sampler.c, test_wm_fast_paths.c)
 * compare the built chains with. selector NULL: the seeded distribution draw. */
#ifndef TRACEMARK_TESTS_CHAIN_TESTING_H
#define TRACEMARK_TESTS_CHAIN_TESTING_H

#include "tracemark/generator.h"

#include <criterion/criterion.h>

static inline tm_sampler_chain *chain_without_pre_truncation(const tm_sampling_params *p, tm_sampler *bias,
                                                             tm_sampler *selector) {
    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(chain, bias));
    if (p->temperature <= 0.0f) {
        tm_sampler_free(selector);
        cr_assert(tm_sampler_chain_add(chain, tm_sampler_greedy()));
        return chain;
    }
    if (p->top_k > 0) cr_assert(tm_sampler_chain_add(chain, tm_sampler_top_k(p->top_k)));
    if (p->top_p < 1.0f) cr_assert(tm_sampler_chain_add(chain, tm_sampler_top_p(p->top_p, 1)));
    if (p->min_p > 0.0f) cr_assert(tm_sampler_chain_add(chain, tm_sampler_min_p(p->min_p, 1)));
    if (p->temperature != 1.0f) cr_assert(tm_sampler_chain_add(chain, tm_sampler_temperature(p->temperature)));
    cr_assert(tm_sampler_chain_add(chain, selector ? selector : tm_sampler_distribution(p->seed)));
    return chain;
}

#endif
