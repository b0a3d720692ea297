/// The passes every pipeline can name, in the order `bitswitch passes` lists them.
let builtinPasses: [Pass] = [canonicalize, foldConstants, inferShapesPass, foldBatchNorm] + quantPasses + trainPasses
    + transformerPasses + mixedPrecisionPasses
