/* Load the exported digits MLP and convnet (two artifacts in one program) and print their
 * predictions, without Python.
 *
 *   python examples/export_digits.py digits_out
 *   make -C examples/c OUT=$PWD/digits_out run
 *   ./digits_predict digits_out/x_test.f32 16 [MLP_WEIGHTS CNN_WEIGHTS]
 *
 * Prints one line per model and sample: "<model> <i> <class> <10 probabilities (%.9g)>".
 * Without weights paths, each library finds its weights next to itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include "digits.h"      /* the MLP: x (batch, 64) */
#include "digits_cnn.h"  /* the convnet: x (batch, 64), reshaped to 8x8x1 inside */

static void print_rows(const char *model, const float *y, long n, int64_t classes) {
    for (long i = 0; i < n; i++) {
        const float *p = y + i * classes;
        int best = 0;
        for (int k = 1; k < classes; k++) if (p[k] > p[best]) best = k;
        printf("%s %ld %d", model, i, best);
        for (int k = 0; k < classes; k++) printf(" %.9g", p[k]);
        printf("\n");
    }
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s INPUTS.f32 N [MLP_WEIGHTS CNN_WEIGHTS]\n", argv[0]); return 2; }
    long n = atol(argv[2]);
    int64_t in_dims[8], out_dims[8];
    digits_input_shape(0, n, in_dims);
    digits_output_shape(0, n, out_dims);
    size_t n_in = (size_t)(in_dims[0] * in_dims[1]), n_out = (size_t)(out_dims[0] * out_dims[1]);
    float *x = malloc(n_in * sizeof *x), *y = malloc(n_out * sizeof *y);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof *x, n_in, f) != n_in) { fprintf(stderr, "cannot read %ld samples from %s\n", n, argv[1]); return 1; }
    fclose(f);
    const void *inputs[] = {x};
    void *outputs[] = {y};

    digits_handle *mlp = digits_create(argc > 3 ? argv[3] : NULL);
    if (!mlp) { fprintf(stderr, "digits_create: %s\n", digits_last_error()); return 1; }
    if (digits_run(mlp, inputs, outputs, n) != 0) { fprintf(stderr, "digits_run: %s\n", digits_last_error()); return 1; }
    print_rows("mlp", y, n, out_dims[1]);
    digits_destroy(mlp);

    digits_cnn_handle *cnn = digits_cnn_create(argc > 4 ? argv[4] : NULL);
    if (!cnn) { fprintf(stderr, "digits_cnn_create: %s\n", digits_cnn_last_error()); return 1; }
    if (digits_cnn_run(cnn, inputs, outputs, n) != 0) { fprintf(stderr, "digits_cnn_run: %s\n", digits_cnn_last_error()); return 1; }
    print_rows("cnn", y, n, out_dims[1]);
    digits_cnn_destroy(cnn);
    free(x); free(y);
    return 0;
}
