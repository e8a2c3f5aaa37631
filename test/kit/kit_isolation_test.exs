# The ExUnit kit's isolation, proven on every backend: three async modules per backend, five
# tests each, all writing the same relative keys at the same time (see
# test/support/kit_isolation.ex). test/kit/kit_cleanup_check_test.exs then checks that nothing
# is left under the run's root.

defmodule ObjectStoreX.KitIsolationMemory1Test do
  use ObjectStoreX.KitIsolation, backend: :memory
end

defmodule ObjectStoreX.KitIsolationMemory2Test do
  use ObjectStoreX.KitIsolation, backend: :memory
end

defmodule ObjectStoreX.KitIsolationMemory3Test do
  use ObjectStoreX.KitIsolation, backend: :memory
end

defmodule ObjectStoreX.KitIsolationLocal1Test do
  use ObjectStoreX.KitIsolation, backend: :local
end

defmodule ObjectStoreX.KitIsolationLocal2Test do
  use ObjectStoreX.KitIsolation, backend: :local
end

defmodule ObjectStoreX.KitIsolationLocal3Test do
  use ObjectStoreX.KitIsolation, backend: :local
end

defmodule ObjectStoreX.KitIsolationS31Test do
  use ObjectStoreX.KitIsolation, backend: :s3
end

defmodule ObjectStoreX.KitIsolationS32Test do
  use ObjectStoreX.KitIsolation, backend: :s3
end

defmodule ObjectStoreX.KitIsolationS33Test do
  use ObjectStoreX.KitIsolation, backend: :s3
end

defmodule ObjectStoreX.KitIsolationAzure1Test do
  use ObjectStoreX.KitIsolation, backend: :azure
end

defmodule ObjectStoreX.KitIsolationAzure2Test do
  use ObjectStoreX.KitIsolation, backend: :azure
end

defmodule ObjectStoreX.KitIsolationAzure3Test do
  use ObjectStoreX.KitIsolation, backend: :azure
end
