defmodule ObjectStoreX.KitIsolation do
  @moduledoc """
  The isolation tests of the ExUnit kit, injected into several async modules per backend
  (test/kit/kit_isolation_test.exs) so that they run at the same time: every test writes the
  same relative keys with its own content, and must read back exactly its own.

  The memory modules use `ObjectStoreX.Case` as a user would, with its default store; the others
  call `ObjectStoreX.Test.isolated_store/2` with the backend's spec from `ObjectStoreX.KitRoot`.
  """

  defmacro __using__(backend: backend) do
    # Chosen here, not in the quoted code: the imports of `use` must reach the module body.
    case_setup =
      if backend == :memory do
        quote do
          use ObjectStoreX.Case, async: true
        end
      else
        quote do
          use ExUnit.Case, async: true
          import ObjectStoreX.Test, only: [assert_object: 3, refute_object: 2, assert_objects: 3]
          @moduletag backend: unquote(backend)

          setup ctx,
            do:
              ObjectStoreX.Test.isolated_store(ctx,
                store: ObjectStoreX.KitRoot.spec(unquote(backend))
              )
        end
      end

    quote do
      unquote(case_setup)
      alias ObjectStoreX.KitRoot

      @keys ["shared/a.txt", "shared/b/c.txt", "top.txt"]

      for i <- 1..5 do
        test "test #{i} sees only its own objects under the shared keys", %{store: store} = ctx do
          me = "#{inspect(ctx.module)} #{ctx.test} #{inspect(self())}"
          refute_object(store, "top.txt")
          for key <- @keys, do: :ok = ObjectStoreX.put(store, key, me)
          # other modules' tests write the same keys meanwhile
          Process.sleep(:rand.uniform(40))
          for key <- @keys, do: assert_object(store, key, me)
          assert_objects(store, "shared", ["shared/a.txt", "shared/b/c.txt"])
          assert_objects(store, nil, @keys)
          :ok = ObjectStoreX.delete(store, "top.txt")
          refute_object(store, "top.txt")
          :ok = ObjectStoreX.put(store, "top.txt", me)

          if unquote(backend) != :memory do
            # the test's prefix is below the run's root, which the final check looks at
            assert String.starts_with?(store.prefix, KitRoot.prefix() <> "/")

            mine =
              Enum.map(
                @keys,
                &"#{store.prefix |> String.replace_prefix(KitRoot.prefix() <> "/", "")}/#{&1}"
              )

            listed =
              ObjectStoreX.list!(KitRoot.root_store(unquote(backend))) |> Enum.map(& &1.location)

            assert Enum.all?(mine, &(&1 in listed))
          end
        end
      end
    end
  end
end
