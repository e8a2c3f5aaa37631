defmodule ObjectStoreX.KitCleanupCheckTest do
  # Not async: ExUnit runs every async module, with its tests' on_exit callbacks, before the
  # first synchronous one, so this runs after the kit's isolation tests have cleaned up.
  use ExUnit.Case, async: false

  alias ObjectStoreX.KitRoot

  for backend <- [:local, :s3, :azure] do
    @tag backend: backend
    test "nothing is left under the kit's root on #{backend}" do
      assert ObjectStoreX.list!(KitRoot.root_store(unquote(backend))) == []
    end
  end

  test "no file, and no test directory, is left under the kit's local root" do
    root = Path.join(KitRoot.local_root(), KitRoot.prefix())
    assert Path.wildcard(Path.join(root, "**/*")) |> Enum.filter(&File.regular?/1) == []
    # module directories may remain; the tests' own directories do not
    assert Path.wildcard(Path.join(root, "*/*")) == []
  end
end
