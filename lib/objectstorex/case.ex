defmodule ObjectStoreX.Case do
  @moduledoc """
  An `ExUnit.CaseTemplate` for tests of code that uses object storage: every test gets an
  isolated store as `:store` in its context (see `ObjectStoreX.Test.isolated_store/2`), removed
  after it, and the assertions of `ObjectStoreX.Test` are imported.

      defmodule MyApp.UploaderTest do
        use ObjectStoreX.Case, async: true

        test "stores the upload under its checksum", %{store: store} do
          {:ok, key} = MyApp.Uploader.store(store, "hello")
          assert_object(store, key, "hello")
          assert_objects(store, "uploads/", [key])
        end
      end

  The store is a fresh memory store unless configured otherwise (see "Which store a test gets"
  in `ObjectStoreX.Test`); `@moduletag objectstorex_store: "file:///tmp/t"` or a per-test
  `@tag` chooses one for a module or a test.

  ## Options

  Those of `ExUnit.Case`, such as `async: true`.
  """

  use ExUnit.CaseTemplate

  using do
    quote do
      import ObjectStoreX.Test, only: [assert_object: 3, refute_object: 2, assert_objects: 3]
    end
  end

  setup context do
    ObjectStoreX.Test.isolated_store(context)
  end
end
