"""Weight shapes of reference models, in torch's layouts ((out, in) for Linear)."""


def gpt2_small():
    """GPT-2 small (124M): token and position embeddings, 12 transformer blocks
    (attention and MLP weights and biases, two layer norms each), a final norm.

    Returns a list of (name, shape); 148 tensors, 124,439,808 parameters.
    """
    vocab, context, width, layers = 50257, 1024, 768, 12
    shapes = [("wte.weight", (vocab, width)), ("wpe.weight", (context, width))]
    for i in range(layers):
        p = f"h.{i}."
        shapes += [
            (p + "ln_1.weight", (width,)), (p + "ln_1.bias", (width,)),
            (p + "attn.c_attn.weight", (3 * width, width)), (p + "attn.c_attn.bias", (3 * width,)),
            (p + "attn.c_proj.weight", (width, width)), (p + "attn.c_proj.bias", (width,)),
            (p + "ln_2.weight", (width,)), (p + "ln_2.bias", (width,)),
            (p + "mlp.c_fc.weight", (4 * width, width)), (p + "mlp.c_fc.bias", (4 * width,)),
            (p + "mlp.c_proj.weight", (width, 4 * width)), (p + "mlp.c_proj.bias", (width,)),
        ]
    shapes += [("ln_f.weight", (width,)), ("ln_f.bias", (width,))]
    return shapes
