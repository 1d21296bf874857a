"Divergences written from their definitions, on probabilities: the one reference the loss tests compare against."

def kl(a, b): return (a * (a.log() - b.log())).sum(-1)

def ref_div(name, p, q, beta=0.5, alpha=0.1):
    "D(p_T = p, p_S = q) per row, from the definition (any float dtype, differentiable)."
    if name == 'fkl': return kl(p, q)
    if name == 'rkl': return kl(q, p)
    if name == 'tvd': return 0.5 * (p - q).abs().sum(-1)
    if name == 'jsd':
        if beta == 0: return kl(p, q)
        if beta == 1: return kl(q, p)
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if name == 'skew_fkl': return kl(p, alpha * p + (1 - alpha) * q)
    if name == 'skew_rkl': return kl(q, alpha * q + (1 - alpha) * p)
    raise ValueError(name)
