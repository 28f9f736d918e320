/* Load the exported digits MLP and print its predictions, without Python.
 *
 *   python examples/export_digits.py digits_artifact
 *   cc -O2 -I digits_artifact examples/c/digits_predict.c -L digits_artifact -lgraphc_digits \
 *      -Wl,-rpath,'$ORIGIN/digits_artifact' -o digits_predict   (or -Wl,-rpath,<abs dir>)
 *   ./digits_predict digits_artifact/x_test.f32 16
 *
 * Prints, per sample, the predicted class and the 10 probabilities (%.9g).
 */
#include <stdio.h>
#include <stdlib.h>
#include "digits.h"

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s INPUTS.f32 N [WEIGHTS]\n", argv[0]); return 2; }
    long n = atol(argv[2]);
    int64_t in_dims[8], out_dims[8];
    digits_input_shape(0, n, in_dims);
    digits_output_shape(0, n, out_dims);
    size_t n_in = (size_t)(in_dims[0] * in_dims[1]), n_out = (size_t)(out_dims[0] * out_dims[1]);
    float *x = malloc(n_in * sizeof *x), *y = malloc(n_out * sizeof *y);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof *x, n_in, f) != n_in) { fprintf(stderr, "cannot read %ld samples from %s\n", n, argv[1]); return 1; }
    fclose(f);

    digits_handle *h = digits_create(argc > 3 ? argv[3] : NULL);  /* NULL: digits.weights next to the library */
    if (!h) { fprintf(stderr, "digits_create: %s\n", digits_last_error()); return 1; }
    const void *inputs[] = {x};
    void *outputs[] = {y};
    if (digits_run(h, inputs, outputs, n) != 0) { fprintf(stderr, "digits_run: %s\n", digits_last_error()); return 1; }
    for (long i = 0; i < n; i++) {
        const float *p = y + i * out_dims[1];
        int best = 0;
        for (int k = 1; k < out_dims[1]; k++) if (p[k] > p[best]) best = k;
        printf("%ld %d", i, best);
        for (int k = 0; k < out_dims[1]; k++) printf(" %.9g", p[k]);
        printf("\n");
    }
    digits_destroy(h);
    free(x); free(y);
    return 0;
}
