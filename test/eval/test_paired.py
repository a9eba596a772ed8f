import math

import pytest

from vidplan_ros.eval.paired import mcnemar_exact_p, paired_markdown, paired_rows


def test_exact_mcnemar_matches_the_binomial_tail():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(6, 0) == pytest.approx(2 / 64)            # 2 * (1/2)^6
    assert mcnemar_exact_p(3, 13) == pytest.approx(2 * (1 + 16 + 120 + 560) / 2 ** 16)
    assert mcnemar_exact_p(13, 3) == mcnemar_exact_p(3, 13)           # two-sided
    assert mcnemar_exact_p(8, 9) == 1.0
    with pytest.raises(ValueError, match='>= 0'):
        mcnemar_exact_p(-1, 2)


def ep(method, seed, success, source='learned', corruption='none'):
    return {'method': method, 'seed': seed, 'success': success, 'plan_source': source,
            'corruption': corruption}


def test_paired_rows_count_the_same_seeds_per_group():
    a = [True, True, False, False, True, True]
    b = [True, False, True, False, False, False]
    eps = [ep('gvp_wm', s, x) for s, x in enumerate(a)]
    eps += [ep('inverse_dynamics', s, x) for s, x in enumerate(b)]
    eps += [ep('inverse_dynamics', 99, True)]                    # no gvp_wm on seed 99
    eps += [ep('expert_executor', s, True, 'expert') for s in range(6)]
    eps += [ep('gvp_wm', s, True, 'expert') for s in range(6)]    # alone in its group
    (row,) = paired_rows(eps)
    assert (row['a'], row['b'], row['plan_source'], row['corruption']) == (
        'gvp_wm', 'inverse_dynamics', 'learned', 'none')
    assert (row['seeds'], row['both'], row['only_a'], row['only_b'], row['neither']) == (
        6, 1, 3, 1, 1)
    assert math.isclose(row['p_value'], mcnemar_exact_p(3, 1))
    md = '\n'.join(paired_markdown(eps))
    assert '| learned | none | gvp_wm vs inverse_dynamics | 6 | 1 | 3 | 1 | 1 | 0.625 |' in md


def test_no_section_without_two_methods_on_shared_seeds():
    assert paired_markdown([ep('gvp_wm', 0, True), ep('inverse_dynamics', 1, True)]) == []
